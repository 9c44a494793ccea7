"""The main window's menus and shortcuts, built in one place so the window stays a view."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

from app.ui.about_dialog import show_about
from app.ui.export_actions import EXPORT_KINDS


def settings_shortcuts() -> list[QKeySequence]:
    """Qt's Preferences key is empty on Linux (and Windows): Ctrl+, works everywhere."""
    return [QKeySequence(QKeySequence.StandardKey.Preferences), QKeySequence("Ctrl+,")]


@dataclass
class WindowActions:
    run: QAction
    run_all: QAction
    cancel: QAction
    export_only_task: QAction  # checkable: export only results of the selected task
    export_cancelled: QAction  # checkable: include cancelled (partial) results


def action(window: QMainWindow, text: str, slot: Callable,
           shortcut: QKeySequence | str | list[QKeySequence] | None = None) -> QAction:
    item = QAction(text, window)
    if isinstance(shortcut, list):
        item.setShortcuts([s for s in shortcut if not s.isEmpty()])
    elif shortcut is not None:
        item.setShortcut(QKeySequence(shortcut))
    item.triggered.connect(slot)
    window.addAction(item)  # shortcuts work even when the menu bar is hidden
    return item


def build_menus(window) -> WindowActions:
    """Menus of ``window`` (a MainWindow): File, Run, View, Settings, Help."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(action(window, "Add Files…", window.queue.ask_add_files,
                               QKeySequence.StandardKey.Open))
    file_menu.addAction(action(window, "Add Folder…", window.queue.ask_add_folder))
    file_menu.addAction(action(window, "Paste Image", window.paste,
                               QKeySequence.StandardKey.Paste))
    file_menu.addSeparator()
    file_menu.addAction(action(window, "Models…", window.show_models, "Ctrl+M"))
    file_menu.addAction(action(window, "Choose Model Folder…", window.choose_model_folder))
    export_menu = file_menu.addMenu("Export Results")
    for kind, label in EXPORT_KINDS:
        export_menu.addAction(action(window, label, lambda _=False, k=kind: window.export(k)))
    export_menu.addSeparator()
    only_task = action(window, "Only the Selected Task", lambda: None)
    only_task.setCheckable(True)
    cancelled = action(window, "Include Cancelled (Partial) Results", lambda: None)
    cancelled.setCheckable(True)
    export_menu.addAction(only_task)
    export_menu.addAction(cancelled)
    file_menu.addSeparator()
    file_menu.addAction(action(window, "Quit", window.close, QKeySequence.StandardKey.Quit))

    run_menu = bar.addMenu("&Run")
    run = action(window, "Run", window.run_current, "Ctrl+Return")
    run_all = action(window, "Run All", window.run_all, "Ctrl+Shift+Return")
    cancel = action(window, "Cancel", window.cancel, "Esc")
    for item in (run, run_all, cancel):
        run_menu.addAction(item)
    action(window, "", window.run_current, "Ctrl+Enter")  # keypad Enter

    view_menu = bar.addMenu("&View")
    view_menu.addAction(action(window, "History…", window.show_history, "Ctrl+H"))
    view_menu.addAction(action(window, "Next Image", window.queue.select_next, "Alt+Down"))
    view_menu.addAction(action(window, "Previous Image", window.queue.select_previous,
                               "Alt+Up"))
    settings_menu = bar.addMenu("&Settings")
    settings_menu.addAction(action(window, "Preferences…", window.show_settings,
                                   settings_shortcuts()))
    bar.addMenu("&Help").addAction(action(window, "About PaliDesk",
                                          lambda: show_about(window)))
    return WindowActions(run, run_all, cancel, only_task, cancelled)
