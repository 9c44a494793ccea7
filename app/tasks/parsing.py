"""Turning PaliGemma's detection and segmentation output into objects.

Per object the model writes four ``<locNNNN>`` tokens (y_min, x_min, y_max, x_max on a
0..1023 grid of the resized square image), for segmentation sixteen ``<segNNN>`` codes,
then a space and the label; objects are separated by `` ; ``. The seg codes are kept raw
here: turning them into a mask needs big_vision's VQ-VAE decoder (app/tasks/masks.py),
which app/tasks/object_masks.py applies to each finished object.

Locations are decoded as big_vision trains and evaluates them: code / 1023 of the side,
so ``<loc1023>`` is the image's far edge (dividing by 1024, as the Hugging Face demo
does, leaves a full-frame box one pixel in 1024 short). Detect and segment share this.

Parsing never raises on model text: malformed objects are skipped, truncated output yields
the objects that were complete, and everything after ``<eos>`` is ignored. A segment
object whose mask codes are missing, too few, too many or out of range keeps its box with
``seg_codes`` None (so it gets no mask).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.tasks.mask_rle import ObjectMask

_GRID = 1023  # the last code is the far edge (big_vision: code / 1023)
_LOCS = 4
_SEGS = 16
_MAX_LOC = 1023
_MAX_SEG = 127

# ASCII digits only: Unicode digits are not what the tokenizer prints.
_TOKEN = re.compile(r"<loc([0-9]{4})>|<seg([0-9]{3})>|<(eos|pad|bos)>|;")
# The tokens _TOKEN knows, with "D" for a digit: a piece may end part-way through one.
_TEMPLATES = ("<locDDDD>", "<segDDD>", "<eos>", "<pad>", "<bos>")
_LONGEST = max(len(template) for template in _TEMPLATES)


@dataclass(frozen=True)
class DetectedObject:
    """One labelled object found by a detect or segment task.

    ``box`` is (x_min, y_min, x_max, y_max) in pixels of the original image; ``loc`` the
    raw (y_min, x_min, y_max, x_max) grid values; ``seg_codes`` the sixteen mask codes
    for segmentation, None for detection; ``mask`` the decoded full-image mask once the
    decoder ran (None for detection, or when no decoder is installed).
    """

    label: str
    box: tuple[float, float, float, float]
    loc: tuple[int, int, int, int]
    seg_codes: tuple[int, ...] | None = None
    mask: ObjectMask | None = None

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict; the box is rounded to hundredths of a pixel."""
        return {
            "label": self.label,
            "box": [round(value, 2) for value in self.box],
            "loc": list(self.loc),
            "seg_codes": None if self.seg_codes is None else list(self.seg_codes),
            "mask": None if self.mask is None else self.mask.to_dict(),
        }


def loc_to_box(
    loc: tuple[int, int, int, int], image_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Map raw (y_min, x_min, y_max, x_max) grid values to an (x_min, y_min, x_max, y_max)
    pixel box of an image of ``image_size`` = (width, height), clamped to the image.

    The grid covers the square the image was stretched to, so each axis scales by its own
    extent; a min written after its max is swapped back.
    """
    y_min, x_min, y_max, x_max = loc
    width, height = image_size
    left, right = sorted((_to_pixels(x_min, width), _to_pixels(x_max, width)))
    top, bottom = sorted((_to_pixels(y_min, height), _to_pixels(y_max, height)))
    return (left, top, right, bottom)


def _to_pixels(value: int, extent: int) -> float:
    return min(max(value / _GRID * extent, 0.0), float(extent))


def parse_objects(
    text: str, image_size: tuple[int, int], segmentation: bool = False
) -> list[DetectedObject]:
    """Return the objects in a finished detect (or, with ``segmentation``, segment) output.

    ``image_size`` is the original image's (width, height). Never raises on odd text.
    """
    parser = IncrementalObjectParser(image_size, segmentation)
    return [*parser.feed(text), *parser.finish()]


class IncrementalObjectParser:
    """Parses output as it streams in, reporting each object as soon as it is complete.

    An object is complete once its label has ended: at the next ``;``, ``<loc>`` token or
    ``<eos>``, or at ``finish()``. Pieces may split anywhere, even inside a token; feeding
    a text in any pieces and then calling ``finish()`` gives ``parse_objects(text)``.
    """

    def __init__(self, image_size: tuple[int, int], segmentation: bool = False) -> None:
        """Raise ``ValueError`` unless both sides of ``image_size`` are positive."""
        width, height = image_size
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {image_size!r}")
        self._image_size = (width, height)
        self._segmentation = segmentation
        self._pending = ""  # the start of a token cut off by the end of the last piece
        self._done = False
        self._objects: list[DetectedObject] = []
        self._start_object()

    @property
    def objects(self) -> list[DetectedObject]:
        """Every object completed so far, in output order."""
        return list(self._objects)

    def feed(self, piece: str) -> list[DetectedObject]:
        """Add the next piece of output; return the objects it completed."""
        if self._done:
            return []
        text = self._pending + piece
        settled = _settled_length(text)
        self._pending = text[settled:]
        return self._consume(text[:settled])

    def finish(self) -> list[DetectedObject]:
        """Mark the end of output; return the object(s) it completed. Later feeds are ignored."""
        if self._done:
            return []
        completed = self._consume(self._pending)  # an unfinished token is plain text now
        self._pending = ""
        completed.extend(self._close_object())
        self._done = True
        return completed

    def _consume(self, text: str) -> list[DetectedObject]:
        completed: list[DetectedObject] = []
        position = 0
        for match in _TOKEN.finditer(text):
            self._add_text(text[position : match.start()])
            position = match.end()
            loc, seg, special = match.groups()
            if loc is not None:
                completed.extend(self._add_loc(int(loc)))
            elif seg is not None:
                completed.extend(self._add_seg(int(seg)))
            elif special is None:  # ";"
                completed.extend(self._close_object())
            elif special == "eos":
                completed.extend(self._close_object())
                self._done = True
                return completed
            # <pad> and <bos> carry nothing.
        self._add_text(text[position:])
        return completed

    def _start_object(self) -> None:
        self._locs: list[int] = []
        self._segs: list[int] = []
        self._label_parts: list[str] = []
        self._has_label = False
        self._malformed = False

    def _add_text(self, text: str) -> None:
        if text:
            self._label_parts.append(text)
            self._has_label = self._has_label or not text.isspace()

    def _add_loc(self, value: int) -> list[DetectedObject]:
        # A loc after a label, a fourth loc or seg codes begins the next object.
        completed: list[DetectedObject] = []
        if self._has_label or len(self._locs) == _LOCS or self._segs:
            completed = self._close_object()
        self._locs.append(value)
        return completed

    def _add_seg(self, value: int) -> list[DetectedObject]:
        if not self._segmentation:
            return []  # stray codes in a detection do not spoil its box
        completed = self._close_object() if self._has_label else []
        if len(self._locs) != _LOCS:
            self._malformed = True  # codes must follow a full box
        self._segs.append(value)
        return completed

    def _close_object(self) -> list[DetectedObject]:
        label = "".join(self._label_parts).strip()
        locs, segs, malformed = self._locs, self._segs, self._malformed
        self._start_object()
        if malformed or not label or len(locs) != _LOCS or max(locs) > _MAX_LOC:
            return []
        seg_codes: tuple[int, ...] | None = None
        # A segment object without exactly 16 valid codes keeps its box (no mask).
        if self._segmentation and len(segs) == _SEGS and max(segs) <= _MAX_SEG:
            seg_codes = tuple(segs)
        y_min, x_min, y_max, x_max = locs
        loc = (y_min, x_min, y_max, x_max)
        found = DetectedObject(label, loc_to_box(loc, self._image_size), loc, seg_codes)
        self._objects.append(found)
        return [found]


def _settled_length(text: str) -> int:
    """Length of the prefix of ``text`` that no later text can turn into another token."""
    # Only the last "<" can open an unfinished token, and only within reach of its length.
    start = text.rfind("<", max(0, len(text) - _LONGEST + 1))
    if start != -1 and _is_token_start(text[start:]):
        return start
    return len(text)


def _is_token_start(text: str) -> bool:
    return any(
        len(text) < len(template)
        and all(
            char == wanted or (wanted == "D" and char in "0123456789")
            for char, wanted in zip(text, template, strict=False)
        )
        for template in _TEMPLATES
    )
