"""The window's size, position and dock layout, kept in the settings as base64."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QMainWindow

from app.settings import Settings


def restore_window(window: QMainWindow, settings: Settings) -> None:
    """Restore what ``remember_window`` saved; a damaged value only costs the layout."""
    for value, restore in ((settings.window_geometry, window.restoreGeometry),
                           (settings.window_state, window.restoreState)):
        if not value:
            continue
        with contextlib.suppress(binascii.Error, ValueError):
            restore(QByteArray(base64.b64decode(value, validate=True)))


def remember_window(window: QMainWindow, settings: Settings) -> Settings:
    """``settings`` with the window's current geometry and layout."""
    return dataclasses.replace(
        settings,
        window_geometry=base64.b64encode(bytes(window.saveGeometry().data())).decode(),
        window_state=base64.b64encode(bytes(window.saveState().data())).decode(),
    )
