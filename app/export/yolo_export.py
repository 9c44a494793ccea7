"""Detection results as YOLO label files: one text file per image plus classes.txt."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from app.export.atomic_write import make_folder, write_text_atomic
from app.export.export_summary import ExportSummary
from app.export.file_names import unique_stems
from app.export.record_selection import labels_in_order, spatial_records
from app.history.history_record import HistoryRecord
from app.tasks.parsing import DetectedObject

CLASSES_FILE = "classes.txt"


def export_yolo(records: Iterable[HistoryRecord], out_dir: Path | str) -> ExportSummary:
    """Write ``<image stem>.txt`` per image and ``classes.txt`` into ``out_dir``.

    Each line is ``class_id x_center y_center width height``, normalised to 0..1 by the
    image's size; class ids start at 0 in order of first appearance. An image whose
    detections found nothing gets an empty file (a negative example). Images whose stems
    clash get a short hash suffix. An image of unknown size is skipped. Raises
    ``ExportError``.
    """
    return write_label_files(
        records, out_dir, lambda class_id, obj, size: _yolo_line(class_id, obj.box, size))


# One line of a label file for an object (its class id, the object, the image's size), or
# None to leave the object out.
ObjectLine = Callable[[int, DetectedObject, tuple[int, int]], str | None]


def write_label_files(records: Iterable[HistoryRecord], out_dir: Path | str,
                      object_line: ObjectLine) -> ExportSummary:
    """The YOLO folder layout shared by the box and the polygon export: a label file per
    image (newest detect/segment result per image and prompt) and ``classes.txt``."""
    folder = Path(out_dir)
    chosen = spatial_records(records)
    labels = labels_in_order(chosen)
    class_ids = {label: index for index, label in enumerate(labels)}
    stems = unique_stems((record.image_path for record in chosen), reserved={"classes"})
    lines: dict[str, list[str]] = {path: [] for path in stems}
    unsized: set[str] = set()
    for record in chosen:
        if min(record.image_size) <= 0:
            unsized.add(record.image_path)  # coordinates cannot be normalised without a size
            continue
        for obj in record.objects:
            line = object_line(class_ids[obj.label], obj, record.image_size)
            if line is not None:
                lines[record.image_path].append(line)
    make_folder(folder)
    summary = ExportSummary()
    for path, stem in stems.items():
        target = folder / f"{stem}.txt"
        if path in unsized:
            summary.skipped.append(target)
            continue
        write_text_atomic(target, "".join(line + "\n" for line in lines[path]))
        summary.written.append(target)
    classes = folder / CLASSES_FILE
    write_text_atomic(classes, "".join(label + "\n" for label in labels))
    summary.written.append(classes)
    return summary


def _yolo_line(class_id: int, box: tuple[float, float, float, float], size: tuple[int, int]) -> str:
    x_min, y_min, x_max, y_max = box
    width, height = size
    values = (
        (x_min + x_max) / 2 / width,
        (y_min + y_max) / 2 / height,
        (x_max - x_min) / width,
        (y_max - y_min) / height,
    )
    return f"{class_id} " + " ".join(f"{min(max(v, 0.0), 1.0):.6f}" for v in values)
