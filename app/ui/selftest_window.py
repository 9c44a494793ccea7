"""The window half of ``palidesk --self-test``: the real MainWindow and engine thread on
the built-in model and image, with settings and history in a temporary folder."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QEventLoop, QLibraryInfo, qVersion
from PySide6.QtWidgets import QApplication

from app.history import HistoryStore
from app.selftest import SelfTestFailure
from app.settings import Settings, SettingsStore
from app.ui.main_window import MainWindow

MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class WindowCheck:
    tokens: list[int]
    text: str
    stop_reason: str
    seconds: float


def check_window(model: Path, image: Path, *, gpu_layers: int, timeout_s: float,
                 say: Callable[[str, str], None]) -> WindowCheck:
    """Open the window, load ``model``, caption ``image``, close; raises SelfTestFailure."""
    # Offscreen unless the caller chose a platform: the check must run without a display.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    available = sorted(p.name.split(".")[0].removeprefix("libq") for p in plugins.glob("*q*"))
    say("Qt", f"PySide6 {pyside_version}, Qt {qVersion()}, platform {app.platformName()} "
        f"(bundled: {', '.join(available) or 'none found'})")
    with tempfile.TemporaryDirectory(prefix="palidesk-selftest-") as temp:
        root = Path(temp)
        store = SettingsStore(root / "config" / "settings.json")
        store.save(Settings(model_folder=str(model), models_dir=str(root / "models"),
                            quantization="F16", gpu_layers=gpu_layers,
                            threads=min(4, os.cpu_count() or 1),
                            max_new_tokens=MAX_NEW_TOKENS, last_task="caption",
                            caption_style="caption"))
        history = HistoryStore(root / "data" / "history.sqlite3")
        window = MainWindow(store, history, root / "cache")
        try:
            window.show()
            say("window", f"opened {window.width()}x{window.height()}, "
                f"title {window.windowTitle()!r}")
            return _caption(app, window, image, timeout_s, say)
        finally:
            window.close()  # cancels, frees the model in its thread and joins it
            history.close()
            app.processEvents()
            if window.engine.thread.isRunning():
                raise SelfTestFailure("the engine thread did not stop when the window closed")


def _caption(app: QApplication, window: MainWindow, image: Path, timeout_s: float,
             say: Callable[[str, str], None]) -> WindowCheck:
    _wait(app, lambda: not window.loading, timeout_s, "the model to load")
    if window.model is None:
        reason = window.notices.history[-1] if window.notices.history else "no reason given"
        raise SelfTestFailure(f"the model did not load: {reason}")
    say("model", f"{window.status.model_label.text()} on {window.model.device}")

    window.queue.add_paths([image])
    _wait(app, lambda: all(i.status != "loading" for i in window.queue.items()), timeout_s,
          "the image to load")
    items = window.queue.items()
    if len(items) != 1 or items[0].status == "error":
        reason = items[0].error if items else "it was not queued"
        raise SelfTestFailure(f"the built-in image could not be read: {reason}")
    key = items[0].key
    window.queue.set_current(key)
    prompt = window.task_panel.prompt()
    started = time.monotonic()
    window.run_current()
    if not window.session.busy:
        reason = window.task_panel.run_button.toolTip() or f"prompt {prompt!r}"
        raise SelfTestFailure(f"the run did not start: {reason}")
    _wait(app, lambda: not window.session.busy, timeout_s, "the caption")
    seconds = time.monotonic() - started
    shown = window.results_panel.records()
    if window.queue.item(key).status == "failed" or not shown:
        reason = window.queue.item(key).note or window.results_panel.text() or "no result"
        raise SelfTestFailure(f"the task failed: {reason}")
    result = shown[0]
    say("caption", f"prompt {prompt!r} -> {result.text!r}")
    if not window.history.recent(limit=1):
        raise SelfTestFailure("the result was not stored in the (temporary) history")
    return WindowCheck(list(result.tokens), result.text, result.stop_reason, seconds)


def _wait(app: QApplication, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Turn the event loop until ``done()``; the worker's signals arrive meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise SelfTestFailure(f"timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
