"""The window end to end, through the real worker thread and engine on a tiny model."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QObject, QPointF, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.history import HistoryStore
from app.settings import Settings, SettingsStore
from app.tasks import parse_objects
from app.ui.main_window import MainWindow
from conftest import IMAGES

LOAD_TIMEOUT_MS = 60_000


class Recorder(QObject):
    """Receives the worker's signals in the UI thread, like the window does (a plain
    function would be called directly in the worker thread)."""

    def __init__(self, worker, on_token=None, on_object=None) -> None:
        super().__init__()
        self.events: list[str] = []
        self.tokens: list[str] = []
        self.on_token, self.on_object = on_token, on_object
        worker.token.connect(self.token)
        worker.object_found.connect(self.obj)

    @Slot(int, str)
    def token(self, _job: int, text: str) -> None:
        self.tokens.append(text)
        self.events.append("token")
        if self.on_token:
            self.on_token(len(self.tokens))

    @Slot(int, object)
    def obj(self, _job: int, _obj) -> None:
        self.events.append("object")
        if self.on_object:
            self.on_object()


class Outcomes(QObject):
    """Collects the worker's job outcomes in the UI thread."""

    def __init__(self, worker) -> None:
        super().__init__()
        self.items: list = []
        worker.job_ended.connect(self.add)

    @Slot(object)
    def add(self, outcome) -> None:
        self.items.append(outcome)


def run_and_wait(qtbot, window: MainWindow, timeout_ms: int = 60_000):
    """Run the current image, wait until the window has handled it; the stored record."""
    outcomes = Outcomes(window.engine.worker)
    window.run_current()
    qtbot.waitUntil(lambda: window.session.running is None and bool(outcomes.items),
                    timeout=timeout_ms)
    return outcomes.items[-1].record


def run_all_and_wait(qtbot, window: MainWindow, timeout_ms: int = 120_000) -> None:
    window.run_all()
    qtbot.waitUntil(lambda: not window.session.busy, timeout=timeout_ms)


def _make_window(tmp_path: Path, model_folder: Path | None, **overrides) -> MainWindow:
    store = SettingsStore(tmp_path / "config" / "settings.json")
    settings = Settings()
    settings.model_folder = str(model_folder) if model_folder else None
    settings.quantization = "F16"
    settings.threads = 1
    for key, value in overrides.items():
        setattr(settings, key, value)
    store.save(settings)
    history = HistoryStore(tmp_path / "data" / "history.sqlite3")
    return MainWindow(store, history, tmp_path / "cache")


@pytest.fixture
def window(qtbot, tmp_path: Path, converted):
    win = _make_window(tmp_path, converted("pg2-tiny-224"), last_task="detect",
                       detect_classes="cat", max_new_tokens=40)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.model is not None, timeout=LOAD_TIMEOUT_MS)
    yield win
    win.close()
    win.history.close()


def _drop(window: MainWindow, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)


def _wait_ready(qtbot, window: MainWindow, count: int) -> None:
    qtbot.waitUntil(lambda: len([i for i in window.queue.items() if i.status != "loading"])
                    >= count, timeout=10_000)


def test_drop_detect_streams_tokens_and_boxes(qtbot, window: MainWindow, tmp_path: Path):
    image = tmp_path / "photo.png"
    shutil.copy(IMAGES / "noise_97x150.png", image)
    _drop(window, [image])
    _wait_ready(qtbot, window, 1)
    window.queue.set_current(window.queue.items()[0].key)
    assert window.task_panel.prompt() == "detect cat"

    overlay_counts_while_streaming: list[int] = []
    recorder = Recorder(window.engine.worker, on_object=lambda: QTimer.singleShot(
        0, lambda: overlay_counts_while_streaming.append(len(window.view.overlay_items()))))
    result = run_and_wait(qtbot, window)
    assert result is not None
    events, tokens = recorder.events, recorder.tokens

    assert "".join(tokens) == result.text
    assert window.results_panel.text().startswith(result.text.replace("<eos>", "")[:20])
    expected = parse_objects(result.text, (97, 150), segmentation=False)
    assert expected, "the fixture output should contain complete objects"
    assert [o.label for o in result.objects] == [o.label for o in expected]
    assert len(window.view.overlay_items()) == len(expected)
    # Boxes appeared while tokens were still streaming, not only at the end.
    first_object = events.index("object")
    assert "token" in events[first_object + 1 :]
    assert overlay_counts_while_streaming and overlay_counts_while_streaming[0] >= 1
    assert window.queue.items()[0].status == "done"
    assert window.results_panel.object_rows() == len(expected)
    # The result went to history, attributed to the loaded model's pair.
    stored = window.history.recent(limit=5)[0]
    assert stored.text == result.text and stored.pair_id == window.model.identity.pair_id


def test_event_loop_keeps_turning_during_generation(qtbot, window: MainWindow):
    window.queue.add_paths([IMAGES / "shapes_320x240.png"])
    _wait_ready(qtbot, window, 1)
    window.queue.set_current(window.queue.items()[0].key)
    settings = window.settings
    # Long enough to measure: the tiny model decodes 400 tokens in ~0.3 s since the
    # decoder runs without flash attention.
    settings.max_new_tokens = 2000
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    started = time.monotonic()
    run_and_wait(qtbot, window, timeout_ms=120_000)
    elapsed = time.monotonic() - started
    timer.stop()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert elapsed > 0.3, "the generation was too short to measure anything"
    # A blocked UI thread would show one long gap; allow generous scheduling noise.
    assert max(gaps) < 0.25, f"UI thread stalled for {max(gaps):.3f} s"
    assert len(ticks) > elapsed / 0.05


def test_cancel_stops_within_a_token_and_keeps_the_text(qtbot, window: MainWindow):
    window.queue.add_paths([IMAGES / "shapes_320x240.png"])
    _wait_ready(qtbot, window, 1)
    window.queue.set_current(window.queue.items()[0].key)
    window.settings.max_new_tokens = 400
    recorder = Recorder(window.engine.worker,
                        on_token=lambda n: window.cancel() if n == 5 else None)
    result = run_and_wait(qtbot, window)
    assert recorder.tokens
    assert result.stop_reason == "cancelled"
    # Cancel is checked before every token: at most the tokens already queued arrive.
    assert len(result.tokens) < 40
    assert window.queue.items()[0].status == "ready"
    assert "cancelled" in window.results_panel.listed_titles()[0] or \
        "Cancelled" in window.results_panel.status_label.text()


def test_changing_quantization_swaps_the_model_in_place(qtbot, window: MainWindow):
    window.queue.add_paths([IMAGES / "strokes_500x500.png"])
    _wait_ready(qtbot, window, 1)
    window.queue.set_current(window.queue.items()[0].key)
    first = run_and_wait(qtbot, window)
    assert window.model.quant == "F16" and first.tokens
    new = Settings(**{**window.settings.__dict__, "quantization": "Q4_K_M"})
    window.apply_settings(new)
    qtbot.waitUntil(lambda: window.model is not None and window.model.quant == "Q4_K_M",
                    timeout=LOAD_TIMEOUT_MS)
    assert "Q4_K_M" in window.status.model_label.text()
    # The queue and the earlier result are still there; the new model runs.
    assert len(window.queue.items()) == 1 and window.results_panel.records()
    second = run_and_wait(qtbot, window)
    assert second.tokens
    # Both results are listed for the image, newest first.
    assert [r.quantization for r in window.results_panel.records()] == ["Q4_K_M", "F16"]
    assert [r.quantization for r in window.history.recent()[:2]] == ["Q4_K_M", "F16"]


def test_run_all_skips_images_done_for_this_task_and_model(qtbot, window: MainWindow,
                                                            tmp_path: Path):
    paths = []
    for name in ("noise_97x150.png", "shapes_320x240.png"):
        paths.append(tmp_path / name)
        shutil.copy(IMAGES / name, paths[-1])
    window.settings.max_new_tokens = 6
    window.queue.add_paths(paths[:1])
    _wait_ready(qtbot, window, 1)
    window.queue.set_current(window.queue.items()[0].key)
    run_and_wait(qtbot, window)
    window.queue.add_paths(paths[1:])
    _wait_ready(qtbot, window, 2)
    before = len(window.history.recent())
    run_all_and_wait(qtbot, window)
    assert len(window.history.recent()) == before + 1  # only the new image ran
    assert "1 already done" in window.status.batch_label.full_text()


def test_first_run_panel_without_a_model(qtbot, tmp_path: Path):
    win = _make_window(tmp_path, None)
    qtbot.addWidget(win)
    win.show()
    assert win.first_run.isVisible()
    assert not win.actions_.run.isEnabled()
    win.close()
    win.history.close()


def test_bad_model_folder_is_a_notice_not_a_crash(qtbot, tmp_path: Path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    win = _make_window(tmp_path, empty)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: not win.loading, timeout=LOAD_TIMEOUT_MS)
    assert win.model is None
    assert "not a PaliDesk model folder" in win.notices.text()
    assert win.first_run.isVisible()
    win.close()
    win.history.close()


def test_closing_mid_generation_cancels_and_joins(qtbot, tmp_path: Path, converted):
    win = _make_window(tmp_path, converted("pg2-tiny-224"), max_new_tokens=500)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.model is not None, timeout=LOAD_TIMEOUT_MS)
    win.queue.add_paths([IMAGES / "shapes_320x240.png"])
    _wait_ready(qtbot, win, 1)
    win.queue.set_current(win.queue.items()[0].key)
    with qtbot.waitSignal(win.engine.worker.token, timeout=60_000):
        win.run_current()
    win.close()
    assert not win.engine.thread.isRunning()
    assert not win.engine.worker.engine.loaded
    win.history.close()
