"""COCO metrics for detect and segment answers, computed by pycocotools' COCOeval.

Predictions have no confidence: each object gets score 1.0 (a ``score`` field, if a record
has one, is used instead), so COCOeval's ranking among one image's objects follows the
order the model wrote them. Labels map to the truth's categories by name, ignoring case;
a label that names no category cannot be scored and is counted in ``unknown_labels``.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from app.evaluation.predictions import Prediction
from app.evaluation.truth import SpatialTruth, TruthImage

# COCOeval.stats positions (area "all", 100 detections) for what we report.
_STATS = {"mAP": 0, "AP50": 1, "AP75": 2, "recall": 8}


@dataclass
class SpatialScore:
    metrics: dict[str, float | None]
    unknown_labels: dict[str, int] = field(default_factory=dict)
    boxes_as_masks: int = 0  # segment objects without a decoded mask, scored as their box
    # Objects whose "box" is missing or not 4 finite numbers x0 <= x1, y0 <= y1: they
    # cannot be placed, so they are not scored, and the report says how many.
    unusable_boxes: int = 0


def score_spatial(truth: SpatialTruth, matched: dict[str, Prediction],
                  segmentation: bool) -> SpatialScore:
    """mAP@[.5:.95], AP50, AP75 and recall (and mIoU for masks) over the matched images."""
    images = [image for image in truth.images if image.file_name in matched]
    ids = {image.id for image in images}
    names = truth.category_by_name()
    result = SpatialScore(metrics={})
    detections: list[dict[str, Any]] = []
    for image in images:
        for obj in matched[image.file_name].objects:
            label = str(obj.get("label", "")).strip().lower()
            if label not in names:
                result.unknown_labels[label] = result.unknown_labels.get(label, 0) + 1
                continue
            det = _detection(image, names[label], obj, segmentation, result)
            if det is not None:
                detections.append(det)
    annotations = [a for a in truth.annotations if a["image_id"] in ids]
    iou_type = "segm" if segmentation else "bbox"
    result.metrics = _coco_metrics(truth, images, annotations, detections, iou_type)
    if segmentation:
        result.metrics["mIoU"] = _mean_iou(images, annotations, detections)
    return result


def _detection(image: TruthImage, category: int, obj: dict[str, Any], segmentation: bool,
               result: SpatialScore) -> dict[str, Any] | None:
    box = _box(obj.get("box"))
    if box is None:
        result.unusable_boxes += 1
        return None
    x0, y0, x1, y1 = box
    det: dict[str, Any] = {"image_id": image.id, "category_id": category,
                           "bbox": [x0, y0, x1 - x0, y1 - y0],
                           "score": float(obj.get("score", 1.0))}
    if segmentation:
        rle = _mask_rle(obj.get("mask"), image)
        if rle is None:
            # No decoded mask (an older run, or the decoder was not available): the box
            # stands in for the mask, and the report says how many did.
            result.boxes_as_masks += 1
            rle = _polygon_rle([[x0, y0, x1, y0, x1, y1, x0, y1]], image)
        det["segmentation"] = rle
    return det


def _box(value: Any) -> tuple[float, float, float, float] | None:
    """[x0, y0, x1, y1] as 4 finite numbers in order, or None (NaN would match anything)."""
    if not isinstance(value, list) or len(value) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value):
        return None
    x0, y0, x1, y1 = (float(v) for v in value)
    return (x0, y0, x1, y1) if x0 <= x1 and y0 <= y1 else None


def _mask_rle(mask: Any, image: TruthImage) -> dict[str, Any] | None:
    """A ``{"size": [h, w], "counts": ...}`` mask as compressed RLE, or None if absent or
    not a mask of this image (the caller then scores the box and counts it)."""
    if not isinstance(mask, dict) or mask.get("size") != [image.height, image.width]:
        return None  # absent, odd, or for another image size: no pixel-wise comparison
    h, w = image.height, image.width
    counts = mask.get("counts")
    if isinstance(counts, list):
        # Uncompressed RLE: run lengths >= 0 covering the image exactly.
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) \
                or sum(counts) != h * w:
            return None
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if not isinstance(counts, str):
        return None
    try:
        rle = {"size": [h, w], "counts": counts.encode("ascii")}
        # pycocotools decodes any string into some mask: one that is not its own encoding
        # again (what run --json writes always is) is not a mask, not a shape to score.
        again = mask_utils.encode(np.asfortranarray(mask_utils.decode(rle)))
    except (UnicodeEncodeError, ValueError, TypeError):
        return None
    return rle if again["counts"] == rle["counts"] else None


def _polygon_rle(polygons: list[list[float]], image: TruthImage) -> dict[str, Any]:
    return mask_utils.merge(mask_utils.frPyObjects(polygons, image.height, image.width))


def _truth_rle(annotation: dict[str, Any], image: TruthImage) -> dict[str, Any]:
    seg = annotation.get("segmentation")
    if isinstance(seg, list):
        return _polygon_rle(seg, image)
    if isinstance(seg, dict):
        if isinstance(seg.get("counts"), list):
            return mask_utils.frPyObjects(seg, image.height, image.width)
        return seg
    x, y, w, h = annotation["bbox"]
    return _polygon_rle([[x, y, x + w, y, x + w, y + h, x, y + h]], image)


def _coco_metrics(truth: SpatialTruth, images: list[TruthImage],
                  annotations: list[dict[str, Any]], detections: list[dict[str, Any]],
                  iou_type: str) -> dict[str, float | None]:
    if not images:
        return dict.fromkeys(_STATS)
    if not annotations:
        # Nothing to find: AP is undefined (COCO says -1); say "none" instead of a number.
        return dict.fromkeys(_STATS)
    if not detections:
        return dict.fromkeys(_STATS, 0.0)
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i.id, "file_name": i.file_name, "width": i.width,
                    "height": i.height} for i in images],
        "categories": [{"id": cid, "name": name} for cid, name in truth.categories.items()],
        "annotations": annotations,
    }
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # COCOeval prints its table; --json must not
        gt.createIndex()
        dt = gt.loadRes(detections)
        evaluation = COCOeval(gt, dt, iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: _clean(evaluation.stats[index]) for name, index in _STATS.items()}


def _clean(value: float) -> float | None:
    return None if value < 0 else round(float(value), 4)


def _mean_iou(images: list[TruthImage], annotations: list[dict[str, Any]],
              detections: list[dict[str, Any]]) -> float | None:
    """Mean over (image, category) pairs present in the truth or the answer of the IoU
    between the union of the truth's masks and the union of the predicted masks."""
    by_id = {image.id: image for image in images}
    truth_masks: dict[tuple[int, int], list[Any]] = {}
    for ann in annotations:
        if not ann.get("iscrowd"):
            key = (ann["image_id"], ann["category_id"])
            truth_masks.setdefault(key, []).append(_truth_rle(ann, by_id[ann["image_id"]]))
    predicted: dict[tuple[int, int], list[Any]] = {}
    for det in detections:
        predicted.setdefault((det["image_id"], det["category_id"]), []).append(
            det["segmentation"])
    keys = set(truth_masks) | set(predicted)
    if not keys:
        return None
    ious = []
    for key in keys:
        image = by_id[key[0]]
        a = _union(truth_masks.get(key, []), image)
        b = _union(predicted.get(key, []), image)
        union = np.logical_or(a, b).sum()
        ious.append(np.logical_and(a, b).sum() / union if union else 1.0)
    return round(float(np.mean(ious)), 4)


def _union(rles: list[Any], image: TruthImage) -> np.ndarray:
    if not rles:
        return np.zeros((image.height, image.width), dtype=bool)
    return mask_utils.decode(mask_utils.merge(rles, intersect=False)).astype(bool)
