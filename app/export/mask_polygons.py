"""Outlines of a bool mask as polygons, with contourpy (matplotlib's contour engine).

The outline is the 0.5 level line of the mask padded with a zero border, so every
outline closes, even for objects touching the image's edge. contourpy works on pixel
centres; adding 0.5 turns that into image coordinates where pixel (r, c) covers
[c, c+1) × [r, r+1). Points on straight runs are dropped: a polygon keeps its corners.
"""

from __future__ import annotations

import numpy as np
from contourpy import LineType, contour_generator


def mask_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines of ``mask`` (bool [h, w]) as float arrays of (x, y), biggest first.

    Each polygon lists its corners once (not closed by a repeated point). An empty mask
    gives [].
    """
    array = np.asarray(mask, dtype=bool)
    if not array.any():
        return []
    padded = np.pad(array, 1).astype(np.float64)
    lines = contour_generator(z=padded, line_type=LineType.Separate).lines(0.5)
    polygons = [_corners(np.asarray(line, dtype=np.float64) - 1.0 + 0.5) for line in lines]
    polygons = [p for p in polygons if len(p) >= 3]
    return sorted(polygons, key=lambda p: -abs(_area(p)))


def _corners(line: np.ndarray) -> np.ndarray:
    """Drop the repeated closing point and points between collinear neighbours."""
    if len(line) > 1 and np.allclose(line[0], line[-1]):
        line = line[:-1]
    before, after = np.roll(line, 1, axis=0), np.roll(line, -1, axis=0)
    cross = ((line[:, 0] - before[:, 0]) * (after[:, 1] - line[:, 1])
             - (line[:, 1] - before[:, 1]) * (after[:, 0] - line[:, 0]))
    return line[np.abs(cross) > 1e-9]


def _area(polygon: np.ndarray) -> float:
    """Signed area (shoelace)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
