"""Captions as text files beside their images, the layout captioning tools read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from app.export.atomic_write import write_text_atomic
from app.export.export_summary import ExportSummary
from app.export.file_names import unique_stems
from app.export.record_selection import clean_output_text, newest_per_key
from app.history.history_record import HistoryRecord


def export_captions_beside_images(
    records: Iterable[HistoryRecord],
    overwrite: Callable[[Path], bool],
    tasks: Collection[str] = ("caption",),
) -> ExportSummary:
    """Write each image's newest caption to ``<image stem>.txt`` in the image's folder.

    Only records of ``tasks`` count; empty outputs are not written. Where the text file
    exists, ``overwrite(path)`` decides (the window asks the user); a False answer
    skips it. Two images with one stem in one folder (``cat.jpg``, ``cat.png``) get
    names with a short hash instead of sharing a file. Raises ``ExportError``.
    """
    chosen = newest_per_key(
        (record for record in records if record.task in tasks),
        lambda record: record.image_path,
    )
    by_folder: dict[Path, list[str]] = defaultdict(list)
    for record in chosen:
        by_folder[Path(record.image_path).parent].append(record.image_path)
    targets: dict[str, Path] = {}
    for folder, paths in by_folder.items():
        for path, stem in unique_stems(paths).items():
            targets[path] = folder / f"{stem}.txt"
    summary = ExportSummary()
    for record in chosen:
        text = clean_output_text(record.text)
        if not text:
            continue
        target = targets[record.image_path]
        if target.exists() and not overwrite(target):
            summary.skipped.append(target)
            continue
        write_text_atomic(target, text)  # no trailing newline: some trainers keep it
        summary.written.append(target)
    return summary
