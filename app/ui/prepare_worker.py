"""Runs a model preparation (download, convert, quantize, verify) off the UI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject

from app.errors import Cancelled
from app.models.installed import InstalledModels
from app.models.prepare import prepare_model
from app.ui.worker_thread import WorkerThread


def _cancelled(exc: Cancelled) -> str:
    # A cancelled download already says what it kept; other steps do not.
    kept = "" if "kept" in str(exc) else (
        " The work done so far is kept; prepare it again to continue.")
    return f"{exc}{kept}"


class PrepareThread(WorkerThread):
    """``start_requested.emit(PrepareRequest)``; the worker's ``finished`` carries the
    installed model's folder."""

    def __init__(self, models: InstalledModels, parent: QObject | None = None) -> None:
        super().__init__(
            lambda request, progress, cancel: prepare_model(request, models, progress=progress,
                                                            cancel=cancel),
            "PaliDesk prepare", "Preparing the model", _cancelled, parent)
