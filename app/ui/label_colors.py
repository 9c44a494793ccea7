"""One colour per object label, the same in every run, and a readable text colour on it."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from PySide6.QtGui import QColor

# Stepping hue by the golden ratio spreads neighbouring indices far apart on the wheel.
_GOLDEN = 0.618033988749895
# Quantising hue to this many steps keeps any two steps at least ~8° apart (never two
# near-identical greens); two labels share a colour only if they share a step.
_HUE_STEPS = 45
# Saturation/value pairs that stay vivid on photos and dark enough for white text or
# light enough for black; a second hash byte picks one, so a hue clash is rarely total.
_SHADES = ((0.85, 0.95), (0.65, 0.80), (0.95, 0.70))


@lru_cache(maxsize=1024)
def _hsv_for_label(label: str) -> tuple[float, float, float]:
    # hashlib, not hash(): Python salts str hashes per process, so colours would change.
    digest = hashlib.sha256(label.strip().casefold().encode("utf-8")).digest()
    step = int.from_bytes(digest[:4], "big") % _HUE_STEPS
    hue = (step * _GOLDEN) % 1.0
    saturation, value = _SHADES[digest[4] % len(_SHADES)]
    return hue, saturation, value


def color_for_label(label: str) -> QColor:
    """The colour for ``label``: stable across runs, ignoring case and outer spaces."""
    hue, saturation, value = _hsv_for_label(label)
    return QColor.fromHsvF(hue, saturation, value)


def text_color_on(color: QColor) -> QColor:
    """Black or white, whichever reads better on ``color`` (WCAG relative luminance)."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    luminance = (
        0.2126 * linear(color.redF())
        + 0.7152 * linear(color.greenF())
        + 0.0722 * linear(color.blueF())
    )
    # 0.179 is where black and white text have equal contrast against the colour.
    return QColor(0, 0, 0) if luminance > 0.179 else QColor(255, 255, 255)
