"""PaliDesk's results as X-AnyLabeling shapes (the remote server's ``/v1/predict`` answer).

``{"success": true, "data": {"shapes": [...], "description": "..."}}``, each shape as
X-AnyLabeling-Server's ``Shape`` schema writes it (``app/schemas/shape.py``):

- a detected object → ``rectangle`` with its four corners, clockwise from the top left,
  in pixels of the original image (``DetectedObject.box``, the box the COCO export writes);
- a segmented object with a mask → one ``polygon`` per outer outline of the mask
  (app/export/mask_polygons.py traces them; holes are dropped, as labelme-style polygons
  cannot carry them); an object split in several parts gives its polygons one
  ``group_id``. A segmented object without a mask (no decoder installed) keeps its box
  as a rectangle;
- text tasks → ``description`` (X-AnyLabeling shows it in its description box).

PaliGemma gives no confidence, so ``score`` is null unless the caller passes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.export.mask_polygons import mask_polygons
from app.tasks.parsing import DetectedObject


def rectangle_points(box: tuple[float, float, float, float]) -> list[list[float]]:
    """The four corners of an (x_min, y_min, x_max, y_max) box: top left, top right,
    bottom right, bottom left, as X-AnyLabeling draws a rectangle."""
    x_min, y_min, x_max, y_max = (float(v) for v in box)
    return [[x_min, y_min], [x_max, y_min], [x_max, y_max], [x_min, y_max]]


def object_shapes(
    objects: Sequence[DetectedObject],
    scores: Sequence[float | None] | None = None,
) -> list[dict[str, Any]]:
    """The shapes of detect or segment objects, in the objects' order."""
    shapes: list[dict[str, Any]] = []
    next_group = 1
    for index, obj in enumerate(objects):
        score = scores[index] if scores is not None else None
        outlines = _outer_outlines(obj.mask.to_array()) if obj.mask is not None else []
        if not outlines:
            shapes.append(_shape(obj.label, "rectangle", rectangle_points(obj.box), score))
            continue
        group = None
        if len(outlines) > 1:
            group, next_group = next_group, next_group + 1
        for outline in outlines:
            points = [[float(x), float(y)] for x, y in outline]
            shapes.append(_shape(obj.label, "polygon", points, score, group))
    return shapes


def predict_data(
    objects: Sequence[DetectedObject] = (),
    description: str = "",
    scores: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """The ``data`` of a ``/v1/predict`` answer: shapes for objects, text as description."""
    return {"shapes": object_shapes(objects, scores), "description": description.strip()}


def predict_response(data: dict[str, Any]) -> dict[str, Any]:
    """``{"success": true, "data": data}``, X-AnyLabeling-Server's success envelope."""
    return {"success": True, "data": data}


def error_response(code: str, message: str) -> dict[str, Any]:
    """X-AnyLabeling-Server's error envelope; X-AnyLabeling shows ``message``."""
    return {"success": False, "error": {"code": code, "message": message}}


def _outer_outlines(mask: np.ndarray) -> list[np.ndarray]:
    # mask_polygons traces outer outlines with a positive shoelace area (image axes, y
    # down) and holes with a negative one; only outer outlines are regions.
    return [polygon for polygon in mask_polygons(mask) if _signed_area(polygon) > 0]


def _signed_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _shape(
    label: str, shape_type: str, points: list[list[float]], score: float | None,
    group_id: int | None = None,
) -> dict[str, Any]:
    return {
        "label": label,
        "shape_type": shape_type,
        "points": points,
        "score": score,
        "group_id": group_id,
        "description": None,
        "difficult": False,
        "attributes": {},
        "flags": None,
        "direction": 0,
        "kie_linking": [],
    }
