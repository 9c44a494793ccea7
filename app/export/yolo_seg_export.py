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

from app.export.export_summary import ExportSummary
from app.export.mask_polygons import mask_polygons
from app.export.yolo_export import write_label_files
from app.history.history_record import HistoryRecord
from app.tasks.parsing import DetectedObject


def export_yolo_seg(records: Iterable[HistoryRecord], out_dir: Path | str) -> ExportSummary:
    """Write YOLO-seg ``<image stem>.txt`` files and ``classes.txt`` into ``out_dir``.

    Class ids start at 0 in order of first appearance. An object whose mask is empty is
    left out; an image of unknown size is skipped. Raises ``ExportError``.
    """
    def object_line(class_id: int, obj: DetectedObject, size: tuple[int, int]) -> str | None:
        points = _outline(obj)
        return _line(class_id, points, size) if points else None

    return write_label_files(records, out_dir, object_line)


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
