"""Byte progress for downloads: ProgressEvents in bytes, with speed and time left in words."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from app.models.disk_space import format_size
from app.progress import ProgressCallback, ProgressEvent, format_duration

STAGE = "download"
# At most this many events a second reach the callback (a fast link yields thousands of
# chunks a second; the window and the terminal need a few updates, not every chunk).
PROGRESS_INTERVAL_S = 0.25
# Speed is measured over the last few seconds so it follows the link, not the whole run.
SPEED_WINDOW_S = 5.0
SAMPLE_STEP_S = 0.1
# A speed measured over less time than this is noise (the first chunk of a small file).
MIN_MEASURE_S = 0.5
# At least one event this often while a file is being fetched, also when the link delivers
# nothing (the watchdog in resumable_fetch.py calls ``heartbeat``): a user sees the speed
# fall and the time left grow instead of a frozen line.
HEARTBEAT_S = 1.0
# After this long without a byte the line says so.
QUIET_NOTE_S = 3.0


class ByteProgress:
    """Counts the bytes of a download and reports them, at most every PROGRESS_INTERVAL_S.

    ``skipped`` bytes (already on disk) count towards ``done`` but not towards the speed.
    Thread-safe: the download's watchdog thread calls ``heartbeat``.
    """

    def __init__(
        self,
        progress: ProgressCallback,
        total: int,
        *,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self.transferred = 0
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])
        self._last_emit = float("-inf")
        self._last_byte = clock()
        self._lock = threading.RLock()

    def skipped(self, nbytes: int, name: str, note: str) -> None:
        """``nbytes`` of ``name`` were already on disk; always reported."""
        with self._lock:
            self.done += nbytes
            self._last_byte = self._clock()
            self._emit(f"{name}: {note}")

    def note(self, name: str, note: str) -> None:
        """A plain sentence about ``name`` (a retry), always reported."""
        with self._lock:
            self._emit(f"{name}: {note}")

    def heartbeat(self, name: str) -> None:
        """Report ``name`` when nothing was reported for HEARTBEAT_S (no byte arrived):
        the speed measured over the window falls as the quiet time enters it."""
        with self._lock:
            now = self._clock()
            if now - self._last_emit < HEARTBEAT_S:
                return
            self._add_sample(now)
            quiet = now - self._last_byte
            text = self.rate_text()
            if quiet >= QUIET_NOTE_S:
                text += f" (no data for {format_duration(quiet)})"
            self._last_emit = now
            self._emit(f"{name}: {text}")

    def discarded(self, nbytes: int) -> None:
        """``nbytes`` counted before turned out unusable (the file starts over)."""
        with self._lock:
            self.done -= nbytes

    def received(self, nbytes: int, name: str, *, final: bool = False) -> None:
        """``nbytes`` of ``name`` arrived; reported when due or when ``final`` (file done)."""
        with self._lock:
            self.done += nbytes
            self.transferred += nbytes
            now = self._clock()
            if nbytes:
                self._last_byte = now
            self._add_sample(now)
            if final or now - self._last_emit >= self.interval_s:
                self._last_emit = now
                self._emit(f"{name}: {self.rate_text()}")

    def _add_sample(self, now: float) -> None:
        if len(self._samples) > 1 and now - self._samples[-2][0] < SAMPLE_STEP_S:
            self._samples[-1] = (now, self.transferred)  # keeps the window's samples few
        else:
            self._samples.append((now, self.transferred))
        while len(self._samples) > 2 and now - self._samples[1][0] >= SPEED_WINDOW_S:
            self._samples.popleft()

    def speed(self) -> float:
        """Bytes per second over the recent window (0 until there is a measurement)."""
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 >= MIN_MEASURE_S else 0.0

    def rate_text(self) -> str:
        """``120.0 MB of 5.9 GB, 42.1 MB/s, about 2 min 20 s left``."""
        amount = f"{format_size(self.done)} of {format_size(self.total)}"
        speed = self.speed()
        left = self.total - self.done
        if speed <= 0:
            return amount if left <= 0 else f"{amount}, measuring speed"
        rate = f"{amount}, {format_size(speed)}/s"
        return rate if left <= 0 else f"{rate}, about {format_duration(left / speed)} left"

    def _emit(self, message: str) -> None:
        self.progress(ProgressEvent(STAGE, self.done, self.total, message))
