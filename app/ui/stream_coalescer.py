"""Streamed text and objects reach the results panel and the image at most once per frame.

The worker sends one signal per token; handling each by inserting it into the results
text made the window's work per token grow with the answer (see
``app.session.stream_pacing``). Here a token's slot only appends to a list; a single-shot
timer shows what gathered once per frame. When the stream is slow every piece is shown
at once, as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

from app.session.stream_pacing import StreamPacer
from app.tasks.parsing import DetectedObject


class StreamCoalescer(QObject):
    """Calls ``show_text`` with the text gathered since the last call, and ``show_objects``
    with the objects completed since then, each at most once per frame."""

    def __init__(self, show_text: Callable[[str], None],
                 show_objects: Callable[[list[DetectedObject]], None],
                 parent: QObject | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self._show_text, self._show_objects = show_text, show_objects
        self._clock = clock
        self._text: StreamPacer[str] = StreamPacer()
        self._objects: StreamPacer[DetectedObject] = StreamPacer()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    def add_text(self, text: str) -> None:
        if text:
            self._schedule(self._text.add(text, self._clock()))

    def add_object(self, obj: DetectedObject) -> None:
        self._schedule(self._objects.add(obj, self._clock()))

    def flush(self) -> None:
        """Show everything held now (the frame ended, or the run ended)."""
        self._timer.stop()
        now = self._clock()
        if text := "".join(self._text.take(now)):
            self._show_text(text)
        if objects := self._objects.take(now):
            self._show_objects(objects)

    def discard(self) -> None:
        """Drop what is held (a new run replaces the display)."""
        self._timer.stop()
        self._text.clear()
        self._objects.clear()

    def pending(self) -> bool:
        """Whether something streamed is not shown yet."""
        return bool(len(self._text) or len(self._objects))

    def _schedule(self, wait_s: float) -> None:
        if wait_s <= 0:
            self.flush()
        elif not self._timer.isActive():
            self._timer.start(max(1, math.ceil(wait_s * 1000)))
