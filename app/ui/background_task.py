"""Runs one long job (an evaluation, a speed test) in its own thread, with progress and
cancel. Not the engine worker: these jobs load their own Engine, so the window's model
stays loaded (and its memory stays in use) meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.errors import PaliDeskError
from app.progress import CancelFlag, ProgressCallback

# job(progress, cancel) -> result
Job = Callable[[ProgressCallback, CancelFlag], Any]


class _Worker(QObject):
    progress = Signal(object)  # ProgressEvent
    finished = Signal(object)  # the job's result
    failed = Signal(str)  # a sentence for the user

    def __init__(self, job: Job, cancel: CancelFlag) -> None:
        super().__init__()
        self.job = job
        self.cancel = cancel

    @Slot()
    def run(self) -> None:
        try:
            result = self.job(self.progress.emit, self.cancel)
        except PaliDeskError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # keep the window alive and tell the user
            self.failed.emit(f"The job failed unexpectedly: {exc}")
        else:
            self.finished.emit(result)


class BackgroundTask(QObject):
    """``start()`` runs ``job`` on a new QThread; signals arrive on the creating thread."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, job: Job, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cancel_flag = CancelFlag()
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.worker = _Worker(job, self.cancel_flag)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.progress.connect(self.progress)
        self.worker.finished.connect(self._done)
        self.worker.failed.connect(self._failed)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def cancel(self) -> None:
        self.cancel_flag.cancel()

    def stop(self, timeout_ms: int = 60_000) -> bool:
        """Cancel and wait for the thread (closing a dialog mid-job)."""
        self.cancel()
        self.thread.quit()
        return self.thread.wait(timeout_ms)

    def _done(self, result: object) -> None:
        self.thread.quit()
        self.thread.wait()
        self.finished.emit(result)

    def _failed(self, message: str) -> None:
        self.thread.quit()
        self.thread.wait()
        self.failed.emit(message)
