"""One FIFO in front of the engine: every request's job waits here, one worker thread
runs them in order, and the queue refuses new work past its capacity.

Plain Python (no web stack): the HTTP handlers submit jobs and read their events; the
tests drive it with a fake runner.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("palidesk.server")

J = TypeVar("J")
EventSink = Callable[[object], None]
# Runs one job on the worker thread, handing each event to the sink; must not raise.
Runner = Callable[[J, EventSink], None]


class QueueFull(Exception):
    """The queue holds ``capacity`` jobs already: the client should retry later."""


class QueueClosed(Exception):
    """The server is shutting down and takes no new job."""


@dataclass
class _Entry(Generic[J]):
    job: J
    sink: EventSink
    dropped: Callable[[], None]  # tells the client its job will never run


class JobQueue(Generic[J]):
    """``capacity`` jobs may wait behind the running one; ``submit`` past that raises
    QueueFull. ``close`` lets the running job finish and drops the waiting ones."""

    def __init__(self, runner: Runner[J], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the queue must hold at least one job")
        self.capacity = capacity
        self._runner = runner
        self._waiting: deque[_Entry[J]] = deque()
        self._running: _Entry[J] | None = None
        self._closed = False
        self._lock = threading.Condition()
        self.served = 0  # jobs the worker finished running, whatever their end
        self._thread = threading.Thread(target=self._work, name="palidesk-serve-worker",
                                        daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Jobs waiting or running."""
        with self._lock:
            return len(self._waiting) + (self._running is not None)

    def submit(self, job: J, sink: EventSink, dropped: Callable[[], None]) -> None:
        """Put ``job`` at the end of the line; its events go to ``sink`` from the worker
        thread; ``dropped`` is called instead when the queue closes before it runs."""
        with self._lock:
            if self._closed:
                raise QueueClosed("The server is shutting down.")
            if len(self._waiting) >= self.capacity:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting.")
            self._waiting.append(_Entry(job, sink, dropped))
            self._lock.notify()

    def close(self, wait: bool = True, timeout: float | None = None) -> None:
        """Take no new job, drop the waiting ones, let the running one finish."""
        with self._lock:
            self._closed = True
            dropped = list(self._waiting)
            self._waiting.clear()
            self._lock.notify_all()
        for entry in dropped:
            _safely(entry.dropped)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if not self._waiting:
                    return  # closed and nothing left
                entry = self._waiting.popleft()
                self._running = entry
            try:
                self._runner(entry.job, entry.sink)
            except Exception:  # a runner bug must not stop the line behind it
                log.exception("served job failed")
            finally:
                with self._lock:
                    self._running = None
                    self.served += 1


def _safely(call: Callable[[], None]) -> None:
    try:
        call()
    except Exception:
        log.exception("dropping a waiting job failed")
