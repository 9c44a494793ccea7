"""Do two quantizations give the same answer? Needs no labels: one is the reference.

An image agrees on tokens when both generated exactly the same token ids; on boxes when
both found the same number of objects and each pairs one-to-one with an object of the
same label at IoU >= 0.9 (``BOX_IOU``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

from app.evaluation.predictions import Prediction

BOX_IOU = 0.9


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x_min, y_min, x_max, y_max) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else (1.0 if a == b else 0.0)


def boxes_agree(a: list[dict[str, Any]], b: list[dict[str, Any]], iou: float = BOX_IOU) -> bool:
    """Same count, and a one-to-one pairing by label with IoU >= ``iou`` (greedy, best first)."""
    if len(a) != len(b):
        return False
    pairs = sorted(
        ((box_iou(x["box"], y["box"]), i, j) for i, x in enumerate(a) for j, y in enumerate(b)
         if str(x.get("label", "")).strip().lower() == str(y.get("label", "")).strip().lower()),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    for value, i, j in pairs:
        if value >= iou and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    return len(used_a) == len(a)


def token_difference(a: Prediction, b: Prediction) -> float:
    """0.0 for identical tokens, up to 1.0: normalised edit distance of the token lists."""
    return float(Levenshtein.normalized_distance(a.tokens, b.tokens))


@dataclass(frozen=True)
class Agreement:
    reference: str
    images: int  # images both answered
    same_tokens: int
    same_boxes: int | None  # None for text tasks

    @property
    def token_share(self) -> float | None:
        return self.same_tokens / self.images if self.images else None

    @property
    def box_share(self) -> float | None:
        if self.same_boxes is None or not self.images:
            return None
        return self.same_boxes / self.images

    @property
    def share(self) -> float | None:
        """The headline figure: boxes for detect/segment, tokens otherwise."""
        return self.box_share if self.same_boxes is not None else self.token_share

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "images": self.images,
                "same_tokens": self.same_tokens, "same_boxes": self.same_boxes,
                "token_share": self.token_share, "box_share": self.box_share,
                "share": self.share}


def agreement(reference: str, ref: dict[str, Prediction], other: dict[str, Prediction],
              spatial: bool) -> Agreement:
    """Compare ``other`` with ``ref`` (image -> prediction) on the images both answered."""
    common = [image for image in ref if image in other
              and not ref[image].error and not other[image].error]
    same_tokens = sum(ref[i].tokens == other[i].tokens for i in common)
    same_boxes = (sum(boxes_agree(ref[i].objects, other[i].objects) for i in common)
                  if spatial else None)
    return Agreement(reference, len(common), same_tokens, same_boxes)
