"""Decode with one thread when that is faster: when another process holds a core.

llama.cpp's threads meet after every graph node (946 per Gemma 2 decode step). If
another process holds one of a 2-core machine's cores, the other thread waits at every
node: measured Q4_K_M decode fell from 14.7 to 0.3-5 tokens/s with 2 threads, while one
thread kept 7.6-10.4 (docs/benchmarks.md). On an idle machine one thread is 29% slower.
Neither can be known in advance, so each task tries both for a few steps and keeps the
faster for the rest.
"""

from __future__ import annotations

import statistics

TRIAL_STEPS = 4  # steps timed with each thread count before choosing


class DecodeThreadChooser:
    """Say how many threads the next decode step gets; feed back how long it took."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.many: list[float] = []
        self.one: list[float] = []
        self.choice: int | None = None if threads > 1 else 1

    def next_threads(self) -> int:
        if self.choice is not None:
            return self.choice
        return self.threads if len(self.many) < TRIAL_STEPS else 1

    def record(self, threads: int, seconds: float) -> None:
        if self.choice is not None:
            return
        (self.many if threads > 1 else self.one).append(seconds)
        if len(self.one) >= TRIAL_STEPS:
            faster_alone = statistics.median(self.one) < statistics.median(self.many)
            self.choice = 1 if faster_alone else self.threads
