"""Giving a finished segment object its mask: decode its 16 codes, paste into the image.

This is the one place the pieces meet: the parser's object (box codes + mask codes),
big_vision's decoder (app/tasks/masks.py) and the RLE the object carries
(app/tasks/mask_rle.py). The task runner calls it as each object completes, in the
worker thread, so the window only ever draws finished masks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from app.tasks.mask_rle import ObjectMask
from app.tasks.masks import CODES_PER_MASK, decode_masks, load_decoder, paste_mask, pixel_box
from app.tasks.parsing import DetectedObject


def with_mask(obj: DetectedObject, weights: Path | str,
              image_size: tuple[int, int]) -> DetectedObject:
    """``obj`` with its decoded mask, or ``obj`` unchanged when it has no 16 mask codes.

    ``image_size`` is the original image's (width, height). The pixel box is big_vision's
    int(code / 1023 · side) of the raw location codes (min and max in order). Raises
    ``MaskDecoderError`` for a missing or invalid weights file.
    """
    if obj.seg_codes is None or len(obj.seg_codes) != CODES_PER_MASK:
        return obj
    map64 = decode_masks(weights, np.array([obj.seg_codes]))[0]
    y1, x1, y2, x2 = obj.loc
    box = pixel_box((min(y1, y2), min(x1, x2), max(y1, y2), max(x1, x2)), image_size)
    mask = paste_mask(map64, box, image_size)
    return dataclasses.replace(obj, mask=ObjectMask.from_array(mask))


def check_decoder(weights: Path | str) -> None:
    """Load (and keep) the decoder now, so a bad file is reported before any work starts.

    Raises ``MaskDecoderError``.
    """
    load_decoder(weights)


def mask_area(obj: DetectedObject) -> int | None:
    """Pixels in ``obj``'s mask, or None when it has none (for the detections table)."""
    return None if obj.mask is None else obj.mask.area
