"""How busy the machine was with *other* processes while we measured.

This machine is shared (2 cores, other people's tests run beside ours). ``OtherLoad``
reads /proc/stat (all CPU time) and /proc/self/stat (ours, all threads) before and after
a measurement; the difference is the average number of cores other processes kept busy.
A run with ``other_cores`` near 0 is clean; near 1 means one of our two threads had to
share its core.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _total_busy_s() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]  # idle + iowait
    # guest time is already counted in user/nice
    return (sum(values[:8]) - idle) / _TICK


def _own_busy_s() -> float:
    t = os.times()
    return t.user + t.system


class OtherLoad:
    """``with OtherLoad() as load: ...`` then ``load.other_cores``."""

    def __enter__(self) -> OtherLoad:
        self._wall = time.perf_counter()
        self._total = _total_busy_s()
        self._own = _own_busy_s()
        self.other_cores = float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        total = _total_busy_s() - self._total
        own = _own_busy_s() - self._own
        self.other_cores = max(0.0, (total - own) / wall) if wall > 0.05 else float("nan")
        self.own_cores = own / wall if wall > 0.05 else float("nan")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_quiet(max_other_cores: float = 0.15, window_s: float = 2.0,
               timeout_s: float = 0.0) -> float:
    """Wait (up to ``timeout_s``) until other processes used < ``max_other_cores`` over a
    ``window_s`` window; returns the last window's value. timeout 0 = do not wait."""
    deadline = time.perf_counter() + timeout_s
    while True:
        with OtherLoad() as load:
            time.sleep(window_s if timeout_s > 0 else 0.2)
        if load.other_cores < max_other_cores or time.perf_counter() >= deadline:
            return load.other_cores
