"""Runs one long job (an evaluation, a speed test) in its own thread, with progress and
cancel. Not the engine worker: these jobs load their own Engine, so the window's model
stays loaded (and its memory stays in use) meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import QDialog

from app.progress import CancelFlag, ProgressCallback
from app.ui.worker_thread import JobWorker

# job(progress, cancel) -> result
Job = Callable[[ProgressCallback, CancelFlag], Any]


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
        self.worker = JobWorker(lambda _argument, progress, cancel: job(progress, cancel),
                                "The job")
        self.worker.cancel_flag = self.cancel_flag
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run_without_argument)
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


def time_left(done: int, total: int, elapsed: float) -> str:
    """"about 6 s left" / "about 2 min left" from the pace so far ("" before the first
    step and after the last)."""
    if not 0 < done < total:
        return ""
    left = elapsed / done * (total - done)
    return f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.0f} min left"


class TaskDialog(QDialog):
    """A dialog running one ``BackgroundTask`` at a time (``self.task``), which stops when
    the dialog closes: Esc, the close button, or the window closing."""

    task: BackgroundTask | None = None

    def shutdown(self) -> None:
        """Stop a running task (the window or the dialog is closing)."""
        if self.task is not None and self.task.running:
            self.task.stop()

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)

    def reject(self) -> None:  # Esc
        self.shutdown()
        super().reject()
