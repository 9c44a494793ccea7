"""Start the window: QApplication, the stores it uses, and the main window."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from platformdirs import user_cache_dir

from app.user_folders import UserFolderError, ensure_user_folders


def run_gui(argv: list[str] | None = None, images: list[Path] | None = None) -> int:
    """Open the PaliDesk window (optionally with ``images`` queued); returns the exit code."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.history import HistoryStore, default_history_path
    from app.resources import resource_path
    from app.settings import SettingsStore, default_settings_path
    from app.ui.main_window import MainWindow

    # Follow the system's light/dark scheme and scale crisply on HiDPI screens (Qt 6
    # does both by default; rounding policy keeps fractional scales sharp).
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("PaliDesk")
    app.setOrganizationName("PaliDesk")
    app.setDesktopFileName("palidesk")
    icon = QIcon()
    for size in (48, 128, 256):
        icon.addFile(str(resource_path("icons", f"palidesk-{size}.png")))
    app.setWindowIcon(icon)
    logging.basicConfig(level=logging.WARNING)
    try:
        ensure_user_folders()
    except UserFolderError as exc:
        # No window can work without these folders: say why, in a dialog and the terminal.
        print(f"error: {exc}", file=sys.stderr)
        if QGuiApplication.platformName() not in ("offscreen", "minimal"):
            QMessageBox.critical(None, "PaliDesk cannot start", str(exc))
        return 1
    history_path = default_history_path()
    window = MainWindow(SettingsStore(default_settings_path()), HistoryStore(history_path),
                        Path(user_cache_dir("PaliDesk", appauthor=False)))
    if images:
        window.queue.add_paths(images)
    window.show()
    code = app.exec()
    window.history.close()
    return code
