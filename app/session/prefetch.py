"""Which images the idle engine encodes ahead, so Run on a queued image costs only the
prefill: the selected image first, then the next ones in queue order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Each 224 px image is 2.4 MB of rows in the 512 MB cache; a few ahead is plenty.
AHEAD = 3


def prefetch_order(items: Sequence[Path], current: Path | None,
                   ahead: int = AHEAD) -> list[Path]:
    """The selected image, then up to ``ahead`` images that follow it in the queue."""
    order: list[Path] = []
    start = 0
    if current is not None:
        order.append(current)
        if current in items:
            start = list(items).index(current) + 1
    following = [p for p in list(items)[start:] + list(items)[:start] if p != current]
    order.extend(following[:ahead])
    return order
