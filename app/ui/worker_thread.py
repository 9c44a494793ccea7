"""One long job at a time on a thread of its own, with progress, cancel and a sentence for
the user when it fails: what model preparation and the mask decoder's download share.

``WorkerThread`` keeps its thread for the dialog's life and runs a job for each
``start_requested`` argument; ``BackgroundTask`` (``background_task.py``) runs one job on
a thread made for it. Both use ``JobWorker`` for the run itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.errors import Cancelled, PaliDeskError
from app.progress import CancelFlag, ProgressCallback

# job(argument, progress, cancel) -> result
Job = Callable[[Any, ProgressCallback, CancelFlag], Any]


class JobWorker(QObject):
    """Runs ``job`` in its thread; exactly one of ``finished`` / ``failed`` per run."""

    progress = Signal(object)  # ProgressEvent
    finished = Signal(object)  # the job's result
    failed = Signal(str)  # a sentence for the user ("cancelled" included)

    def __init__(self, job: Job, what: str,
                 cancelled: Callable[[Cancelled], str] = str) -> None:
        super().__init__()
        self.job, self.what, self.cancelled = job, what, cancelled
        self.cancel_flag = CancelFlag()

    @Slot(object)
    def run(self, argument: Any = None) -> None:
        try:
            result = self.job(argument, self.progress.emit, self.cancel_flag)
        except Cancelled as exc:
            self.failed.emit(self.cancelled(exc))
        except PaliDeskError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # keep the window alive and tell the user
            self.failed.emit(f"{self.what} failed unexpectedly: {exc}")
        else:
            self.finished.emit(result)

    @Slot()
    def run_without_argument(self) -> None:
        """For a thread's ``started`` signal, which carries nothing."""
        self.run(None)

    @Slot(object)
    def run_fresh(self, argument: Any) -> None:
        """A new run on a kept thread: a cancel of the previous run does not carry over."""
        self.cancel_flag = CancelFlag()
        self.run(argument)


class WorkerThread(QObject):
    """Owns the worker's thread; ``stop()`` cancels and joins it."""

    start_requested = Signal(object)  # the job's argument

    def __init__(self, job: Job, name: str, what: str,
                 cancelled: Callable[[Cancelled], str] = str,
                 parent: QObject | None = None, stop_timeout_ms: int = 60_000) -> None:
        super().__init__(parent)
        self.stop_timeout_ms = stop_timeout_ms
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.worker = JobWorker(job, what, cancelled)
        self.worker.moveToThread(self.thread)
        self.start_requested.connect(self.worker.run_fresh)
        self.thread.start()

    def cancel(self) -> None:
        self.worker.cancel_flag.cancel()

    def stop(self, timeout_ms: int | None = None) -> bool:
        self.cancel()
        self.thread.quit()
        return self.thread.wait(self.stop_timeout_ms if timeout_ms is None else timeout_ms)
