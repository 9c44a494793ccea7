"""Progress on stderr: one updating line on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from app.progress import ProgressEvent


class ProgressPrinter:
    """A ProgressCallback that prints; use as a context manager to end the line."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.interval_s = interval_s
        self._last = 0.0
        self._open_line = False

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        finished = event.done >= event.total
        if not self.interactive and not finished and now - self._last < self.interval_s:
            return
        self._last = now
        line = f"{event.stage}: {event.done}/{event.total} ({event.fraction:.0%}) {event.message}"
        if self.interactive:
            self.stream.write("\r\033[K" + line[:150])
            self._open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __enter__(self) -> ProgressPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()


def transfer_printer(stream: TextIO | None = None) -> ProgressPrinter:
    """Progress of a download: a line at least once a second in a log too, so bytes, speed
    and time left show whatever the link (other work prints every 2 s there)."""
    return ProgressPrinter(stream, interval_s=1.0)
