"""Downloads the mask decoder (vae-oid.npz) off the UI thread, with progress and cancel."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.errors import Cancelled, PaliDeskError
from app.models.mask_decoder import download_decoder
from app.progress import CancelFlag


class MaskDecoderWorker(QObject):
    progress = Signal(object)  # ProgressEvent
    finished = Signal(object)  # Path of the installed decoder
    failed = Signal(str)  # a sentence for the user ("cancelled" included)

    def __init__(self) -> None:
        super().__init__()
        self.cancel_flag = CancelFlag()

    @Slot(object)
    def run(self, models_dir: Path) -> None:
        self.cancel_flag = CancelFlag()
        try:
            path = download_decoder(models_dir, progress=self.progress.emit,
                                    cancel=self.cancel_flag)
        except Cancelled as exc:
            self.failed.emit(str(exc))
        except PaliDeskError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # keep the thread alive and tell the user
            self.failed.emit(f"Downloading the mask decoder failed unexpectedly: {exc}")
        else:
            self.finished.emit(path)


class MaskDecoderThread(QObject):
    """Owns the worker's thread; ``stop()`` cancels and joins it."""

    start_requested = Signal(object)  # the models folder

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("PaliDesk mask decoder download")
        self.worker = MaskDecoderWorker()
        self.worker.moveToThread(self.thread)
        self.start_requested.connect(self.worker.run)
        self.thread.start()

    def cancel(self) -> None:
        self.worker.cancel_flag.cancel()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        self.cancel()
        self.thread.quit()
        return self.thread.wait(timeout_ms)
