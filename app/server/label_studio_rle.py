"""Label Studio's own brush RLE (not COCO's): what ``BrushLabels`` results carry as
``value.rle``. The format of label-studio-sdk's ``converter.brush.mask2rle``, byte for
byte (tests/test_server_label_studio.py compares the two):

the mask is flattened row by row and each pixel repeated 4 times (RGBA); a header of the
length (32 bits), the word size minus one (5 bits: 7) and the four run-length field
sizes minus one (4 bits each: 3, 4, 8, 16 bits); then each run: a single value as
``0 00 000`` + 8 bits, a series as ``1`` + the size's index (2 bits) + length - 1 + 8
bits; zero bits up to the next byte (a full zero byte when already aligned).
"""

from __future__ import annotations

import numpy as np

_SIZES = (3, 4, 8, 16)
_HEADER_SIZES = "".join(f"{size - 1:04b}" for size in _SIZES)


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """Encode a 2-D mask (bool, or uint8 where 255 is painted) as Label Studio's RLE."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {array.shape}")
    values = (array.astype(np.uint8) * 255 if array.dtype == bool
              else array.astype(np.uint8)).ravel()
    return _encode(np.repeat(values, 4))


def _encode(flat: np.ndarray) -> list[int]:
    bits = [f"{len(flat):032b}", f"{8 - 1:05b}", _HEADER_SIZES]
    if len(flat):
        change = np.flatnonzero(flat[1:] != flat[:-1])
        ends = np.append(change, len(flat) - 1)
        lengths = np.diff(np.append(-1, ends))
        for length, value in zip(lengths.tolist(), flat[ends].tolist(), strict=True):
            bits.append(_run(length, value))
    text = "".join(bits)
    text += "0" * (8 - len(text) % 8)
    return [int(text[i:i + 8], 2) for i in range(0, len(text), 8)]


def _run(length: int, value: int) -> str:
    byte = f"{value:08b}"
    if length == 1:
        return "0" + "00" + "000" + byte
    if length <= 8:
        return f"100{length - 1:03b}{byte}"
    if length <= 16:
        return f"101{length - 1:04b}{byte}"
    if length <= 256:
        return f"110{length - 1:08b}{byte}"
    parts = []
    while length > 2**16:  # as the reference writes runs longer than 16 bits can count
        parts.append(f"111{2**16 - 1:016b}{byte}")
        length -= 2**16
    parts.append(f"111{length - 1:016b}{byte}")
    return "".join(parts)
