"""The Tools menu: Evaluate… and Test Speed on This Machine….

The main window adds it with one line::

    add_tools_menu(self, lambda: Path(self.settings.model_folder)
                   if self.settings.model_folder else None)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import platformdirs
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QMainWindow, QMenu

from app.ui.evaluate_dialog import EvaluateDialog
from app.ui.speed_test_dialog import SpeedTestDialog

ModelFolderGetter = Callable[[], Path | None]


def evaluations_dir() -> Path:
    """Where Evaluate writes its reports: the user data folder, never the model folder."""
    return Path(platformdirs.user_data_dir("PaliDesk", appauthor=False)) / "evaluations"


class ToolsMenu(QObject):
    """Owns the menu and the open dialogs; stops their work when the window closes."""

    def __init__(self, window: QMainWindow, model_folder: ModelFolderGetter,
                 output_root: Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.model_folder = model_folder
        self.output_root = output_root or evaluations_dir()
        self.dialogs: list[EvaluateDialog | SpeedTestDialog] = []
        self.menu = QMenu("&Tools", window)
        self.evaluate_action = self.menu.addAction("Evaluate…", self.show_evaluate)
        self.speed_action = self.menu.addAction("Test Speed on This Machine…",
                                                self.show_speed_test)
        self.server_action = self.menu.addAction("Local Server…", self.show_local_server)
        self.local_server = None  # started on first use: needs the optional server extra
        bar = window.menuBar()
        help_menu = next((a for a in bar.actions() if a.text().replace("&", "") == "Help"),
                         None)
        if help_menu is not None:
            bar.insertMenu(help_menu, self.menu)
        else:
            bar.addMenu(self.menu)
        window.installEventFilter(self)

    def show_evaluate(self) -> EvaluateDialog:
        return self._show(EvaluateDialog(self.model_folder(), self.output_root, self.window))

    def show_speed_test(self) -> SpeedTestDialog:
        return self._show(SpeedTestDialog(self.model_folder(), self.window))

    def show_local_server(self):  # type: ignore[no-untyped-def]
        """Serve the window's model over HTTP (app/ui/local_server_dialog.py)."""
        from app.ui.local_server_dialog import LocalServerDialog, local_server_for

        if self.local_server is None:
            self.local_server = local_server_for(self.window)
        if self.local_server is None:
            return None
        dialog = LocalServerDialog(self.local_server, self.window)
        dialog.show()
        return dialog

    def _show(self, dialog):  # type: ignore[no-untyped-def]
        self.dialogs = [d for d in self.dialogs if d.isVisible()]
        self.dialogs.append(dialog)
        dialog.show()
        return dialog

    def shutdown(self) -> None:
        for dialog in self.dialogs:
            dialog.shutdown()
        if self.local_server is not None:
            self.local_server.stop(cancel_in_flight=True)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()  # a dialog's thread must not outlive the window
        return False


def add_tools_menu(window: QMainWindow, model_folder: ModelFolderGetter,
                   output_root: Path | None = None) -> ToolsMenu:
    """Add Tools › Evaluate… and Tools › Test Speed on This Machine… to ``window``."""
    return ToolsMenu(window, model_folder, output_root)
