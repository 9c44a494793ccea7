"""Run-all bookkeeping: what is left, how far along, and an ETA from measured durations."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class BatchProgress:
    """Counts and timing of a "Run all" pass (Qt-free so it is easy to test)."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)
    _started_at: float | None = None

    def job_started(self) -> None:
        self._started_at = time.monotonic()

    def job_ended(self, ok: bool) -> None:
        if self._started_at is not None:
            self.durations.append(time.monotonic() - self._started_at)
            self._started_at = None
        self.done += 1
        if not ok:
            self.failed += 1

    def skip(self) -> None:
        self.done += 1
        self.skipped += 1

    @property
    def remaining(self) -> int:
        return self.total - self.done

    def eta_seconds(self) -> float | None:
        """Remaining time, from the average of the runs so far (None before the first)."""
        if not self.durations:
            return None
        # Later runs reuse no cache across images, so the plain mean is a fair guess.
        return self.remaining * sum(self.durations) / len(self.durations)

    def summary(self) -> str:
        parts = [f"{self.done} of {self.total}"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.failed:
            parts.append(f"{self.failed} failed")
        eta = self.eta_seconds()
        if eta is not None and self.remaining:
            parts.append(f"about {format_duration(eta)} left")
        return " · ".join(parts)


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
