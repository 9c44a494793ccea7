"""Dropping image files and folders onto a window queues them."""

from __future__ import annotations

from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent

from app.ui.image_files import paths_from_mime
from app.ui.image_queue import ImageQueue


class ImageDropMixin:
    """For a QWidget with ``queue: ImageQueue`` that called ``setAcceptDrops(True)``."""

    queue: ImageQueue

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if paths_from_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.queue.add_paths(paths)
