"""An object's full-size mask, kept as COCO compressed RLE (pycocotools' encoding).

RLE keeps a mask of a 4000×3000 photo in a few hundred bytes of text, so objects carry it
in JSON (``palidesk run --json``), in the history and in exports exactly as any COCO tool
reads it: ``{"size": [height, width], "counts": "<compressed RLE>"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask


@dataclass(frozen=True)
class ObjectMask:
    """A bool mask of the whole image; ``size`` is (height, width) as COCO writes it."""

    size: tuple[int, int]
    counts: str

    @classmethod
    def from_array(cls, mask: np.ndarray) -> ObjectMask:
        """Encode a bool [height, width] array."""
        array = np.asarray(mask, dtype=bool)
        if array.ndim != 2:
            raise ValueError(f"a mask must be 2-D, got shape {array.shape}")
        rle = coco_mask.encode(np.asfortranarray(array, dtype=np.uint8))
        height, width = (int(v) for v in rle["size"])
        return cls((height, width), rle["counts"].decode("ascii"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ObjectMask | None:
        """The inverse of ``to_dict`` (None stays None). Raises ValueError on a bad dict."""
        if data is None:
            return None
        try:
            height, width = (int(v) for v in data["size"])
            counts = data["counts"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a COCO RLE mask: {data!r}") from exc
        if not isinstance(counts, str) or height < 0 or width < 0:
            raise ValueError(f"not a compressed COCO RLE mask: {data!r}")
        return cls((height, width), counts)

    def to_dict(self) -> dict[str, object]:
        """``{"size": [h, w], "counts": "..."}``, what pycocotools' ``decode`` reads."""
        return {"size": list(self.size), "counts": self.counts}

    def _rle(self) -> dict[str, object]:
        return {"size": list(self.size), "counts": self.counts.encode("ascii")}

    def to_array(self) -> np.ndarray:
        """The bool [height, width] mask."""
        return coco_mask.decode(self._rle()).astype(bool)

    @property
    def area(self) -> int:
        """Pixels inside the mask."""
        return int(coco_mask.area(self._rle()))
