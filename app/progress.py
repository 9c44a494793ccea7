"""One way to report progress and to cancel, shared by conversion, quantization,
downloads and batch runs (the CLI prints it, the window shows a progress bar)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` units of ``stage`` are finished; ``message`` says what."""

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_: ProgressEvent) -> None:
    """The default callback: report nothing."""


class CancelFlag:
    """Set from any thread; long work calls ``check()`` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, what: str = "The operation") -> None:
        if self._event.is_set():
            raise Cancelled(f"{what} was cancelled.")


def format_duration(seconds: float) -> str:
    """Seconds as people say them: 45 s, 3 min 20 s, 1 h 05 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
