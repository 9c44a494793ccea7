"""A fast answer into the real window (issue 17, item 6): the worker's real thread and
signals, with an engine that streams a fixed answer as fast as it can.

Speed is measured by ``bench/stream_window.py``; these tests check behaviour a user
notices: the text is not laid out again for every token of a burst, Esc is acted on
before a backlog of tokens is drawn, and the text and boxes shown in the end are exactly
the answer's. None of them depends on how fast this machine is.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest

from app.engine.events import ResultEvent, Timings, TokenEvent
from app.engine.image_input import prepare_image
from app.errors import TaskError
from app.history import HistoryStore
from app.session.identity import ModelIdentity
from app.settings import Settings, SettingsStore
from app.tasks import parse_objects
from app.tasks.mask_rle import ObjectMask
from app.ui.engine_worker import LoadedModel
from app.ui.main_window import MainWindow
from app.ui.results_panel import ResultsPanel
from app.ui.stream_coalescer import StreamCoalescer
from conftest import IMAGES

IMAGE = IMAGES / "shapes_320x240.png"
TIMINGS = Timings(0.0, 0.0, 0.001, 0.1, 1000.0, 260, True)


def caption(count: int) -> list[str]:
    words = ("a", " cat", " on", " the", " wooden", " table", " near", " red", " ball")
    return [words[i % len(words)] for i in range(count)]


def detection(objects: int) -> list[str]:
    pieces: list[str] = []
    for i in range(objects):
        y, x = 10 * i % 900, 37 * i % 900
        pieces += [f"<loc{y:04d}>", f"<loc{x:04d}>", f"<loc{y + 60:04d}>",
                   f"<loc{x + 90:04d}>", " cat" if i % 2 else " dog", " ;"]
    return pieces


class BurstEngine:
    """What ``run_task`` needs of an engine. Streams ``pieces`` as fast as it can, checking
    the cancel flag before each token as the real engine does. With ``hold`` set, it
    stops after ``hold_at`` tokens until ``release`` is set (or it is cancelled), so a
    test can let a backlog of token signals pile up in the window's queue."""

    class Pair:
        pair_id, quant = "stream-test", "F16"

    pair = Pair()
    loaded = False  # the worker's prefetch leaves it alone
    config = None

    def __init__(self, pieces: list[str], hold_at: int | None = None,
                 fail_at: int | None = None) -> None:
        self.pieces = pieces
        self.hold_at, self.fail_at = hold_at, fail_at
        self.held = threading.Event()  # set once ``hold_at`` tokens were sent
        self.release = threading.Event()
        self.sent = 0

    def prepare(self, image):
        return prepare_image(image, 32)

    def unload(self) -> None:
        pass

    def generate(self, prepared, prompt, options=None, cancel=None):
        stop = "eos"
        for index in range(len(self.pieces) + 1):
            if index == self.hold_at:
                self.held.set()
                while not self.release.wait(0.01):
                    if cancel is not None and cancel.cancelled:
                        break
            if index == self.fail_at:
                raise TaskError("The engine stopped: a test failure.")
            if cancel is not None and cancel.cancelled:
                stop = "cancelled"
                break
            if index == len(self.pieces):
                break
            self.sent = index + 1
            yield TokenEvent(token_id=1000 + index, text=self.pieces[index], index=index)
        yield ResultEvent(tokens=list(range(1000, 1000 + self.sent)),
                          text="".join(self.pieces[:self.sent]), prompt=prompt,
                          prompt_tokens=[2], stop_reason=stop, timings=TIMINGS,
                          image_size=prepared.original_size)


@pytest.fixture
def make_window(qtbot, tmp_path: Path):
    """A shown window whose worker runs ``BurstEngine``; the model is "loaded" by the
    worker's own signal."""
    windows: list[MainWindow] = []

    def make(engine: BurstEngine, task: str = "caption") -> MainWindow:
        store = SettingsStore(tmp_path / "settings.json")
        store.save(Settings(last_task=task, caption_style="describe",
                            detect_classes="cat ; dog", max_new_tokens=2048))
        win = MainWindow(store, HistoryStore(tmp_path / "history.sqlite3"), tmp_path / "c")
        windows.append(win)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        win.engine.worker.engine = engine
        identity = ModelIdentity(engine.pair.pair_id, "synthetic", engine.pair.quant)
        win.engine.worker.model_loaded.emit(
            LoadedModel(tmp_path, identity, 224, "mix", "synthetic"))
        win.queue.add_paths([IMAGE])
        qtbot.waitUntil(lambda: bool(win.queue.items())
                        and win.queue.items()[0].status != "loading", timeout=10_000)
        win.queue.set_current(win.queue.items()[0].key)
        return win

    yield make
    for win in windows:
        win.close()
        qtbot.waitUntil(lambda w=win: not w.engine.thread.isRunning(), timeout=30_000)
        win.history.close()


def _edits(win: MainWindow) -> list[int]:
    """Counts the edits that add streamed text to the answer's document; each one lays the
    answer's paragraph out again. (The blinking cursor's edits add one glyph at most.)"""
    count = [0]

    def changed(_position: int, _removed: int, added: int) -> None:
        if added > 1:
            count[0] += 1

    win.results_panel.text_edit.document().contentsChange.connect(changed)
    return count


def _ended(qtbot, win: MainWindow) -> None:
    qtbot.waitUntil(lambda: win.session.running is None, timeout=30_000)


def test_a_burst_of_tokens_is_laid_out_once_per_frame_not_per_token(make_window, qtbot):
    pieces = caption(600)
    engine = BurstEngine(pieces, hold_at=600)  # all 600 sent, then it waits
    win = make_window(engine)
    win.run_current()
    # The UI thread handles nothing while the worker sends the whole burst, as when it
    # is busy for a moment during a fast stream: 600 token signals are queued.
    assert engine.held.wait(30)
    edits = _edits(win)
    qtbot.waitUntil(lambda: win.results_panel.text() == "".join(pieces), timeout=10_000)
    # Once when the first token arrived, once at the end of the frame: not 600 times.
    assert edits[0] <= 3, f"{edits[0]} edits of the answer for one burst of 600 tokens"
    engine.release.set()
    _ended(qtbot, win)
    assert win.results_panel.text() == "".join(pieces)


def test_the_end_of_an_answer_keeps_the_text_and_boxes_already_shown(make_window, qtbot):
    pieces = detection(40)
    engine = BurstEngine(pieces, hold_at=len(pieces))
    win = make_window(engine, task="detect")
    win.run_current()
    assert engine.held.wait(30)
    qtbot.waitUntil(lambda: win.results_panel.object_rows() == 40, timeout=10_000)
    drawn = win.view.overlay_items()
    edits = _edits(win)
    engine.release.set()
    _ended(qtbot, win)
    # The stored result is what streamed: nothing is laid out or drawn a second time.
    assert edits[0] == 0
    assert win.view.overlay_items() == drawn
    # ... and what is shown is exactly the stored answer.
    record = win.history.recent(limit=1)[0]
    text = "".join(pieces)
    assert record.text == text and win.results_panel.text() == text
    expected = [o.to_dict() for o in parse_objects(text, (320, 240), segmentation=False)]
    assert [o.to_dict() for o in record.objects] == expected
    assert [o.to_dict() for o in win.results_panel.objects()] == expected
    assert [o.to_dict() for o in win.view.objects()] == expected
    assert win.results_panel.object_rows() == 40
    assert win.results_panel.table.isColumnHidden(3)  # no masks: no "Mask area" column


def test_esc_is_acted_on_before_a_backlog_of_tokens_is_drawn(make_window, qtbot):
    pieces = caption(2000)
    engine = BurstEngine(pieces, hold_at=1500)
    win = make_window(engine)
    win.activateWindow()
    win.run_current()
    assert engine.held.wait(30)  # 1,500 token signals wait in the window's queue
    edits = _edits(win)
    at_cancel: list[int] = []
    real_cancel = win.session.cancel

    def cancel() -> None:
        at_cancel.append(edits[0])
        real_cancel()

    win.session.cancel = cancel
    # Esc reaches the window behind the backlog, as a key press would.
    QTimer.singleShot(0, lambda: QTest.keyClick(win, Qt.Key.Key_Escape))
    _ended(qtbot, win)
    assert at_cancel, "Esc did not reach Cancel"
    # Before the cancel the backlog cost at most a layout or two, not one per token.
    assert at_cancel[0] <= 3, f"{at_cancel[0]} layouts of the text before Esc was acted on"
    # The finished part is kept, exactly; nothing after the cancel is added.
    kept = "".join(pieces[:1500])
    assert engine.sent == 1500
    assert win.results_panel.text() == kept
    assert "kept the 1500 tokens" in win.results_panel.status_label.text()
    record = win.history.recent(limit=1)[0]
    assert record.cancelled and record.text == kept
    assert win.queue.items()[0].status == "ready"


def test_a_failure_mid_stream_keeps_every_token_shown_so_far(make_window, qtbot):
    pieces = caption(300)
    engine = BurstEngine(pieces, fail_at=250)
    win = make_window(engine)
    win.run_current()
    _ended(qtbot, win)
    # Tokens still waiting for their frame when the job failed are shown too.
    assert win.results_panel.text() == "".join(pieces[:250])
    assert "a test failure" in win.results_panel.status_label.text()


def test_a_new_run_does_not_show_what_was_held_for_the_last_one(qtbot) -> None:
    shown: list[str] = []
    clock = [0.0]
    coalescer = StreamCoalescer(shown.append, lambda objs: None, clock=lambda: clock[0])
    coalescer.add_text("a")  # shown at once: nothing was shown this frame
    coalescer.add_text("b")  # held for the frame
    assert shown == ["a"] and coalescer.pending()
    coalescer.discard()
    qtbot.wait(60)
    assert shown == ["a"] and not coalescer.pending()


def test_a_slow_stream_shows_each_token_the_moment_it_arrives(qtbot) -> None:
    shown: list[str] = []
    clock = [0.0]
    coalescer = StreamCoalescer(shown.append, lambda objs: None, clock=lambda: clock[0])
    for index, piece in enumerate(("a", " cat", " on", " a", " mat")):
        clock[0] = index * 0.1  # 10 tokens/s: a CPU build
        coalescer.add_text(piece)
        assert shown[-1] == piece and not coalescer.pending()


def test_a_fast_stream_is_shown_whole_at_the_end_of_the_frame(qtbot) -> None:
    shown: list[str] = []
    clock = [0.0]
    coalescer = StreamCoalescer(shown.append, lambda objs: None, clock=lambda: clock[0])
    for index in range(10):
        clock[0] = index * 0.001  # 1,000 tokens/s
        coalescer.add_text(str(index))
    assert shown == ["0"]
    qtbot.waitUntil(lambda: not coalescer.pending(), timeout=1_000)
    assert shown == ["0", "123456789"]


def test_the_mask_column_shows_once_a_streamed_object_has_a_mask(qtbot) -> None:
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    plain = parse_objects("<loc0100><loc0200><loc0300><loc0400> cat", (64, 48))[0]
    pixels = np.zeros((48, 64), dtype=bool)
    pixels[5:9, 10:20] = True
    masked = dataclasses.replace(plain, mask=ObjectMask.from_array(pixels))
    panel.start("a.png", "segment cat")
    panel.add_object(plain)
    assert panel.table.isColumnHidden(3)
    panel.add_object(masked)
    panel.add_object(plain)  # a later object without a mask keeps the column
    assert not panel.table.isColumnHidden(3)
    assert panel.table.item(1, 3).text() == "40 px"
    panel.start("b.png", "detect cat")  # a new answer starts without the column
    panel.add_object(plain)
    assert panel.table.isColumnHidden(3)
