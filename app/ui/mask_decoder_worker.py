"""Downloads the mask decoder (vae-oid.npz) off the UI thread, with progress and cancel."""

from __future__ import annotations

from PySide6.QtCore import QObject

from app.models.mask_decoder import download_decoder
from app.ui.worker_thread import WorkerThread


class MaskDecoderThread(WorkerThread):
    """``start_requested.emit(models_dir)``; the worker's ``finished`` carries the installed
    decoder's path."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(
            lambda models_dir, progress, cancel: download_decoder(models_dir, progress=progress,
                                                                  cancel=cancel),
            "PaliDesk mask decoder download", "Downloading the mask decoder", parent=parent,
            stop_timeout_ms=30_000)
