"""When streamed output is shown: at once when the stream is slow, at most once per frame
when it is fast.

Showing a piece of text costs the window work that grows with the answer (Qt lays the
whole paragraph out again after each insert, then paints it), so a stream at GPU speed
(150+ tokens/s; 1,000 in ``bench/stream_window.py``) shown token by token falls behind:
the display lags, the window freezes and Esc waits behind the backlog. Pieces that arrive
within one frame of the last shown ones wait and are shown together at the frame's end;
the first piece after a quiet frame is shown at once, so a slow (CPU) stream looks exactly
as before. Qt-free: the window's ``StreamCoalescer`` runs the timer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Generic, TypeVar

from app.tasks.parsing import DetectedObject

T = TypeVar("T")

# 40 frames a second: smooth to the eye, and far inside the 100 ms a lag is noticed in.
FRAME_S = 0.025


class StreamPacer(Generic[T]):
    """Holds streamed items (text pieces, objects) until they are due to be shown."""

    def __init__(self, frame_s: float = FRAME_S) -> None:
        self.frame_s = frame_s
        self._pending: list[T] = []
        self._shown_at = -math.inf  # when items were last taken to be shown

    def add(self, item: T, now: float) -> float:
        """Hold ``item``; return the seconds to wait before ``take`` (0: take it now)."""
        self._pending.append(item)
        return self.wait(now)

    def wait(self, now: float) -> float:
        """Seconds until what is held is due (0 when due or nothing is held)."""
        if not self._pending:
            return 0.0
        return max(0.0, self._shown_at + self.frame_s - now)

    def take(self, now: float) -> list[T]:
        """Everything held, in arrival order; it counts as shown at ``now``."""
        items, self._pending = self._pending, []
        if items:
            self._shown_at = now
        return items

    def clear(self) -> None:
        """Drop what is held (a new run starts)."""
        self._pending = []
        self._shown_at = -math.inf

    def __len__(self) -> int:
        return len(self._pending)


def shows_same(shown: Sequence[DetectedObject], stored: Sequence[DetectedObject]) -> bool:
    """Whether objects shown while streaming look exactly like the stored result's.

    The stored boxes are rounded to hundredths of a pixel (``DetectedObject.to_dict``), so
    they are compared as stored. When they match, the window keeps what it drew instead of
    drawing hundreds of boxes and table rows again at the end of an answer.
    """
    return len(shown) == len(stored) and all(
        a is b or a.to_dict() == b.to_dict() for a, b in zip(shown, stored, strict=True))
