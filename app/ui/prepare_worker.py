"""Runs a model preparation (download, convert, quantize, verify) off the UI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.errors import Cancelled, PaliDeskError
from app.models.installed import InstalledModels
from app.models.prepare import PrepareRequest, prepare_model
from app.progress import CancelFlag, ProgressEvent


class PrepareWorker(QObject):
    progress = Signal(object)  # ProgressEvent
    finished = Signal(object)  # Path of the installed model
    failed = Signal(str)  # a sentence for the user ("cancelled" included)

    def __init__(self, models: InstalledModels) -> None:
        super().__init__()
        self.models = models
        self.cancel_flag = CancelFlag()

    @Slot(object)
    def run(self, request: PrepareRequest) -> None:
        self.cancel_flag = CancelFlag()
        try:
            folder = prepare_model(request, self.models, progress=self._report,
                                   cancel=self.cancel_flag)
        except Cancelled as exc:
            # A cancelled download already says what it kept; other steps do not.
            kept = "" if "kept" in str(exc) else (
                " The work done so far is kept; prepare it again to continue.")
            self.failed.emit(f"{exc}{kept}")
        except PaliDeskError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # keep the thread alive and tell the user
            self.failed.emit(f"Preparing the model failed unexpectedly: {exc}")
        else:
            self.finished.emit(folder)

    def _report(self, event: ProgressEvent) -> None:
        self.progress.emit(event)


class PrepareThread(QObject):
    """Owns the worker's thread; ``stop()`` cancels and joins it."""

    start_requested = Signal(object)

    def __init__(self, models: InstalledModels, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("PaliDesk prepare")
        self.worker = PrepareWorker(models)
        self.worker.moveToThread(self.thread)
        self.start_requested.connect(self.worker.run)
        self.thread.start()

    def cancel(self) -> None:
        self.worker.cancel_flag.cancel()

    def stop(self, timeout_ms: int = 60_000) -> bool:
        self.cancel()
        self.thread.quit()
        return self.thread.wait(timeout_ms)
