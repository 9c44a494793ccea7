"""Decode with one thread fewer when that is faster: when another process holds a core.

llama.cpp's threads meet after every graph node (946 per Gemma 2 decode step). If
another process holds one of the cores our threads run on, the other threads wait at
every node: measured Q4_K_M decode on 2 cores fell from 14.7 to 0.3-5 tokens/s with 2
threads, while one thread kept 7.6-10.4 (docs/benchmarks.md). On an idle machine the
full count is faster. Neither can be known in advance, so each task times a few steps
with all threads and a few with one fewer (N-1: the count that leaves the busy core
alone; on 2 cores that is 1), and keeps the faster for the rest.

Changing the count mid-generation does not change the answer: with flash attention off
(EngineConfig) every op gives the same bits for any thread count (tests/test_determinism).
"""

from __future__ import annotations

import statistics

TRIAL_STEPS = 4  # steps timed with each thread count before choosing


class DecodeThreadChooser:
    """Say how many threads the next decode step gets; feed back how long it took."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.fewer = max(1, threads - 1)
        self.timings: dict[int, list[float]] = {threads: [], self.fewer: []}
        self.choice: int | None = None if threads > 1 else 1

    def next_threads(self) -> int:
        if self.choice is not None:
            return self.choice
        return self.threads if len(self.timings[self.threads]) < TRIAL_STEPS else self.fewer

    def record(self, threads: int, seconds: float) -> None:
        if self.choice is not None or threads not in self.timings:
            return
        self.timings[threads].append(seconds)
        if len(self.timings[self.fewer]) >= TRIAL_STEPS:
            fewer_is_faster = (statistics.median(self.timings[self.fewer])
                               < statistics.median(self.timings[self.threads]))
            self.choice = self.fewer if fewer_is_faster else self.threads
