"""Detection and segmentation results as a COCO dataset file (images, categories,
annotations with boxes and, for objects that have a mask, compressed-RLE segmentation)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from app.export.atomic_write import write_text_atomic
from app.export.export_summary import ExportSummary
from app.export.record_selection import labels_in_order, spatial_records
from app.history.history_record import HistoryRecord, utc_now


def export_coco(records: Iterable[HistoryRecord], path: Path | str) -> ExportSummary:
    """Write the detect and segment records as COCO detection JSON to ``path``.

    Boxes are ``[x, y, width, height]`` in pixels; category ids start at 1 in order of
    first appearance. ``file_name`` is relative to the images' common folder, which is
    named in ``info.image_root``. An object with a mask (segment, decoder installed) gets
    ``segmentation`` as COCO compressed RLE (``{"size": [h, w], "counts": "..."}``, what
    pycocotools reads) and ``area`` = the mask's pixel count; other objects have no
    ``segmentation`` and the box's area. Raises ``ExportError``.
    """
    target = Path(path)
    write_text_atomic(target, json.dumps(coco_dataset(records), indent=2) + "\n")
    return ExportSummary(written=[target])


def coco_dataset(records: Iterable[HistoryRecord]) -> dict[str, object]:
    """The COCO dict ``export_coco`` writes."""
    chosen = spatial_records(records)
    categories = {label: index for index, label in enumerate(labels_in_order(chosen), 1)}
    root, file_names = _relative_names([record.image_path for record in chosen])
    image_ids: dict[str, int] = {}
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for record in chosen:
        if record.image_path not in image_ids:
            image_ids[record.image_path] = len(image_ids) + 1
            images.append(
                {
                    "id": image_ids[record.image_path],
                    "file_name": file_names[record.image_path],
                    "width": record.image_width,
                    "height": record.image_height,
                }
            )
        for obj in record.objects:
            x_min, y_min, x_max, y_max = obj.box
            width, height = x_max - x_min, y_max - y_min
            annotation: dict[str, object] = {
                "id": len(annotations) + 1,
                "image_id": image_ids[record.image_path],
                "category_id": categories[obj.label],
                "bbox": [round(x_min, 2), round(y_min, 2), round(width, 2), round(height, 2)],
                "area": round(width * height, 2),
                "iscrowd": 0,
            }
            if obj.mask is not None:
                annotation["segmentation"] = obj.mask.to_dict()
                annotation["area"] = obj.mask.area
            annotations.append(annotation)
    return {
        "info": {
            "description": "Exported by PaliDesk",
            "date_created": utc_now(),
            "image_root": root,
        },
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": index, "name": label, "supercategory": "object"}
            for label, index in categories.items()
        ],
    }


def _relative_names(paths: list[str]) -> tuple[str | None, dict[str, str]]:
    """The images' common folder and each path relative to it (or as is, if none)."""
    if not paths:
        return None, {}
    try:
        root = os.path.commonpath([os.path.dirname(path) for path in paths])
    except ValueError:  # different drives, or absolute mixed with relative paths
        return None, {path: path for path in paths}
    # Forward slashes: COCO tools join file_name onto a root on every platform.
    return root, {path: Path(os.path.relpath(path, root or ".")).as_posix() for path in paths}
