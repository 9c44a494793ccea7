"""Whether a set of results has anything to export as a given kind, and if not, why in
words: the decision behind the Export menu, Qt-free so it has plain tests."""

from __future__ import annotations

from collections.abc import Sequence

from app.export.record_selection import SPATIAL_TASKS
from app.history.history_record import HistoryRecord

CAPTION_TASKS = ("caption",)


def missing_results(records: Sequence[HistoryRecord], kind: str) -> str:
    """Why there is nothing to export as ``kind`` (an Export menu kind), or ""."""
    if not records:
        return "There are no results to export yet."
    if kind in ("coco", "yolo", "yolo_seg") and not any(r.task in SPATIAL_TASKS
                                                         for r in records):
        return "None of these results are detections; run “Detect objects” or “Segment” first."
    if kind == "mask_png" and not any(obj.mask is not None for r in records
                                      for obj in r.objects):
        return ("None of these results have masks; run “Segment” with the mask decoder "
                "installed (Models dialog) first.")
    if kind == "captions" and not any(r.task in CAPTION_TASKS for r in records):
        return "None of these results are captions; run a caption task first."
    return ""
