"""Export menu actions: ask where, write with ``app.export``, report problems plainly.

The dialogs are small module functions (``ask_save_path``, ``ask_directory``,
``ask_overwrite``, ``confirm``, ``show_message``) so tests can replace them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.errors import ExportError, HistoryError
from app.export import (
    ExportSummary,
    export_captions_beside_images,
    export_coco,
    export_csv,
    export_jsonl,
    export_mask_pngs,
    export_yolo,
    export_yolo_seg,
)
from app.export.eligibility import CAPTION_TASKS, missing_results
from app.history.history_record import HistoryRecord
from app.session.result_store import ResultStore

EXPORT_KINDS: list[tuple[str, str]] = [
    ("jsonl", "Results as JSON Lines…"),
    ("csv", "Results as CSV…"),
    ("coco", "Detections as COCO JSON…"),
    ("yolo", "Detections as YOLO labels…"),
    ("yolo_seg", "Segmentation as YOLO-seg polygons…"),
    ("mask_png", "Masks as PNG files…"),
    ("captions", "Captions as text files beside the images…"),
]

# kind -> (dialog title, suggested file name, file filter, suffix) for single-file exports.
_FILE_TARGETS: dict[str, tuple[str, str, str, str]] = {
    "jsonl": ("Export results as JSON Lines", "palidesk-results.jsonl",
              "JSON Lines (*.jsonl)", ".jsonl"),
    "csv": ("Export results as CSV", "palidesk-results.csv", "CSV files (*.csv)", ".csv"),
    "coco": ("Export detections as COCO JSON", "palidesk-coco.json",
             "JSON files (*.json)", ".json"),
}
_FILE_WRITERS: dict[str, Callable[[list[HistoryRecord], Path], ExportSummary]] = {
    "jsonl": export_jsonl,
    "csv": export_csv,
    "coco": export_coco,
}


def ask_save_path(parent: QWidget, title: str, suggested: Path, file_filter: str) -> Path | None:
    """Ask for a file to write; None when cancelled. (The dialog confirms overwriting.)"""
    chosen, _ = QFileDialog.getSaveFileName(parent, title, str(suggested), file_filter)
    return Path(chosen) if chosen else None


def ask_directory(parent: QWidget, title: str, start: Path) -> Path | None:
    """Ask for a folder; None when cancelled."""
    chosen = QFileDialog.getExistingDirectory(parent, title, str(start))
    return Path(chosen) if chosen else None


def ask_overwrite(parent: QWidget, path: Path) -> QMessageBox.StandardButton:
    """Ask whether to replace ``path``: Yes, Yes to All, No or No to All."""
    buttons = (
        QMessageBox.StandardButton.Yes
        | QMessageBox.StandardButton.YesToAll
        | QMessageBox.StandardButton.No
        | QMessageBox.StandardButton.NoToAll
    )
    return QMessageBox.question(
        parent,
        "Replace caption?",
        f"{path} already exists. Replace it with the new caption?",
        buttons,
        QMessageBox.StandardButton.No,
    )


def confirm(parent: QWidget, title: str, text: str) -> bool:
    """Ask a yes/no question; True for yes."""
    answer = QMessageBox.question(
        parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def show_message(parent: QWidget, title: str, text: str, error: bool = False) -> None:
    """Tell the user something (an error when ``error``)."""
    if error:
        QMessageBox.warning(parent, title, text)
    else:
        QMessageBox.information(parent, title, text)


class OverwriteAnswers:
    """The ``overwrite`` callback for caption export, remembering "to all" answers."""

    def __init__(self, parent: QWidget) -> None:
        self._parent = parent
        self._always: bool | None = None

    def __call__(self, path: Path) -> bool:
        if self._always is not None:
            return self._always
        answer = ask_overwrite(self._parent, path)
        if answer == QMessageBox.StandardButton.YesToAll:
            self._always = True
        elif answer == QMessageBox.StandardButton.NoToAll:
            self._always = False
        return answer in (QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.YesToAll)


def describe_summary(summary: ExportSummary) -> str:
    """A sentence such as "Exported 3 files; skipped 1 file."."""
    written = len(summary.written)
    text = f"Exported {written} file" + ("" if written == 1 else "s")
    if summary.skipped:
        skipped = len(summary.skipped)
        text += f"; skipped {skipped} file" + ("" if skipped == 1 else "s")
    return text + "."


def export_images(
    parent: QWidget, results: ResultStore, images: list[tuple[str, Path]], kind: str,
    task: str | None = None, include_cancelled: bool = False,
) -> str | None:
    """Export the stored results of ``images`` (digest, path), of ``task`` only if given,
    partial (cancelled) ones only if asked. Returns what was written, in words."""
    try:
        records = results.for_images(images, task, include_cancelled)
    except HistoryError as exc:
        show_message(parent, "Export", str(exc), error=True)
        return None
    summary = export_records(parent, records, kind)
    return None if summary is None else describe_summary(summary)


def export_records(
    parent: QWidget, records: list[HistoryRecord], kind: str
) -> ExportSummary | None:
    """Export ``records`` as ``kind`` (see ``EXPORT_KINDS``), asking the user where.

    Returns what was written, or None when the user cancelled, there was nothing of the
    right kind, or writing failed (the user has then been told why).
    """
    labels = dict(EXPORT_KINDS)
    if kind not in labels:
        raise ValueError(f"unknown export kind {kind!r}")
    label = labels[kind].rstrip("…")
    title = "Export " + label[0].lower() + label[1:]
    missing = missing_results(records, kind)
    if missing:
        show_message(parent, title, missing)
        return None
    try:
        if kind in _FILE_WRITERS:
            return _export_file(parent, records, kind)
        if kind in ("yolo", "yolo_seg"):
            return _export_yolo(parent, records, title, kind)
        if kind == "mask_png":
            folder = ask_directory(parent, "Choose a folder for the mask PNG files",
                                   _start_folder(records))
            return None if folder is None else export_mask_pngs(records, folder)
        return export_captions_beside_images(
            records, overwrite=OverwriteAnswers(parent), tasks=CAPTION_TASKS
        )
    except ExportError as error:
        show_message(parent, title, str(error), error=True)
        return None


def _export_file(parent: QWidget, records: list[HistoryRecord], kind: str) -> ExportSummary | None:
    title, name, file_filter, suffix = _FILE_TARGETS[kind]
    path = ask_save_path(parent, title, _start_folder(records) / name, file_filter)
    if path is None:
        return None
    if not path.suffix:
        path = path.with_suffix(suffix)  # "results" typed without an extension
    return _FILE_WRITERS[kind](records, path)


def _export_yolo(parent: QWidget, records: list[HistoryRecord], title: str,
                 kind: str = "yolo") -> ExportSummary | None:
    folder = ask_directory(parent, "Choose a folder for the YOLO label files",
                           _start_folder(records))
    if folder is None:
        return None
    # Label files are named after the images: in the images' own folder they would
    # replace captions written there, so ask first.
    if folder.is_dir() and any(folder.glob("*.txt")):
        question = (
            f"{folder} already holds text files. Label files with the same names "
            "(one per image, and classes.txt) will be replaced. Continue?"
        )
        if not confirm(parent, title, question):
            return None
    return (export_yolo_seg if kind == "yolo_seg" else export_yolo)(records, folder)


def _start_folder(records: list[HistoryRecord]) -> Path:
    """Where the dialogs open: the first image's folder if it still exists."""
    for record in records:
        folder = Path(record.image_path).parent
        if folder.is_dir():
            return folder
    return Path.home()
