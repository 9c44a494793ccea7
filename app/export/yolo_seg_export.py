"""Segmentation results as YOLO-seg label files: one polygon per object per line.

Same layout as the YOLO box export (``<image stem>.txt`` per image, ``classes.txt``), but
each line is ``class_id x1 y1 x2 y2 ...`` with the outline's corners normalised to 0..1.
The outline is the mask's largest connected part (YOLO-seg allows one polygon per
object; small detached bits are dropped); an object without a mask is written as its
box's four corners, so a mixed export still loads as one YOLO-seg dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from app.export.atomic_write import make_folder, write_text_atomic
from app.export.export_summary import ExportSummary
from app.export.file_names import unique_stems
from app.export.mask_polygons import mask_polygons
from app.export.record_selection import labels_in_order, spatial_records
from app.export.yolo_export import CLASSES_FILE
from app.history.history_record import HistoryRecord
from app.tasks.parsing import DetectedObject


def export_yolo_seg(records: Iterable[HistoryRecord], out_dir: Path | str) -> ExportSummary:
    """Write YOLO-seg ``<image stem>.txt`` files and ``classes.txt`` into ``out_dir``.

    Class ids start at 0 in order of first appearance. An object whose mask is empty is
    left out; an image of unknown size is skipped. Raises ``ExportError``.
    """
    folder = Path(out_dir)
    chosen = spatial_records(records)
    labels = labels_in_order(chosen)
    class_ids = {label: index for index, label in enumerate(labels)}
    stems = unique_stems((record.image_path for record in chosen), reserved={"classes"})
    lines: dict[str, list[str]] = {path: [] for path in stems}
    unsized: set[str] = set()
    for record in chosen:
        if min(record.image_size) <= 0:
            unsized.add(record.image_path)
            continue
        for obj in record.objects:
            points = _outline(obj)
            if points:
                lines[record.image_path].append(
                    _line(class_ids[obj.label], points, record.image_size))
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


def _outline(obj: DetectedObject) -> list[tuple[float, float]]:
    """The object's polygon in pixels: the mask's largest outline, else the box."""
    if obj.mask is None:
        x_min, y_min, x_max, y_max = obj.box
        return [(x_min, y_min), (x_max, y_min), (x_max, y_max), (x_min, y_max)]
    polygons = mask_polygons(obj.mask.to_array())
    return [(float(x), float(y)) for x, y in polygons[0]] if polygons else []


def _line(class_id: int, points: list[tuple[float, float]], size: tuple[int, int]) -> str:
    width, height = size
    values = []
    for x, y in points:
        values += [min(max(x / width, 0.0), 1.0), min(max(y / height, 0.0), 1.0)]
    return f"{class_id} " + " ".join(f"{v:.6f}" for v in values)
