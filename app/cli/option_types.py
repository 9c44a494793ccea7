"""argparse types that check a number's range and say the allowed range when refusing.

The same limits as the window's settings and the server's request bodies
(``app.engine.limits``), so a value one refuses is refused by the others too.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from app.engine.limits import MAX_NEW_TOKENS, MAX_SEED, MAX_TEMPERATURE, MAX_TOP_K

MAX_THREADS = 512
MAX_GPU_LAYERS = 1000  # more than any PaliGemma 2 has; -1 means all


def whole_number(low: int, high: int, note: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` inclusive."""

    def parse(text: str) -> int:
        allowed = f"a whole number from {low} to {high}{note}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside the allowed range: {allowed}")
        return value

    return parse


def number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [low, high] (or (low, high])."""

    def parse(text: str) -> float:
        lower = f"above {low:g} up" if low_open else f"from {low:g}"
        allowed = f"a number {lower} to {high:g}"
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            raise argparse.ArgumentTypeError(f"{text} is outside the allowed range: {allowed}")
        return value

    return parse


max_tokens = whole_number(1, MAX_NEW_TOKENS)
threads = whole_number(1, MAX_THREADS)
gpu_layers = whole_number(-1, MAX_GPU_LAYERS, " (-1 = all)")
temperature = number(0.0, MAX_TEMPERATURE)
top_k = whole_number(0, MAX_TOP_K, " (0 = no limit)")
top_p = number(0.0, 1.0, low_open=True)
seed = whole_number(-1, MAX_SEED, " (-1 = a new random seed each run)")
