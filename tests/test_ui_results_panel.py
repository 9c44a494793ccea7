"""The results panel: streaming with a blinking cursor, the finished result, copying."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication
from pytestqt.qtbot import QtBot

from app.engine.events import ResultEvent, Timings
from app.history.history_record import HistoryRecord
from app.tasks.parsing import DetectedObject
from app.tasks.task_runner import TaskResult
from app.ui.results_panel import CURSOR_GLYPH, ResultsPanel, format_timings

CAT = DetectedObject("cat", (20.4, 10.6, 100.2, 90.0), (102, 102, 922, 512))
DOG = DetectedObject("dog", (150.0, 0.0, 200.0, 50.0), (0, 768, 512, 1023))
TIMINGS = Timings(
    image_encode_s=1.921, prefill_s=0.5, first_token_s=5.812, decode_s=3.2,
    decode_tokens_per_s=7.13, prefix_tokens=260, image_cached=False,
)


def _result(text: str, objects: list[DetectedObject], stop: str = "eos",
            tokens: int = 24, timings: Timings = TIMINGS) -> TaskResult:
    event = ResultEvent(
        tokens=list(range(tokens)), text=text, prompt="detect cat ; dog", prompt_tokens=[2],
        stop_reason=stop, timings=timings, image_size=(200, 100),
    )
    return TaskResult(image="/photos/pets.jpg", task="detect", prompt="detect cat ; dog",
                      result=event, objects=objects)


@pytest.fixture
def panel(qtbot: QtBot) -> ResultsPanel:
    widget = ResultsPanel()
    qtbot.addWidget(widget)
    return widget


def test_streaming_text_with_a_blinking_cursor(panel: ResultsPanel, qtbot: QtBot) -> None:
    assert not panel.cursor_timer.isActive()
    panel.start("pets.jpg", "caption en")
    assert panel.cursor_timer.isActive()
    assert panel.cursor_timer.interval() == 500
    assert panel.image_label.text() == "pets.jpg"
    assert panel.prompt_label.text() == "caption en"
    panel.append_text("a cat")
    panel.append_text(" on a\nmat")
    assert panel.text() == "a cat on a\nmat"
    assert panel.text_edit.toPlainText() == "a cat on a\nmat" + CURSOR_GLYPH
    # The glyph blinks off and on again without touching the text.
    qtbot.waitUntil(lambda: panel.text_edit.toPlainText() == "a cat on a\nmat", timeout=2000)
    qtbot.waitUntil(
        lambda: panel.text_edit.toPlainText().endswith(CURSOR_GLYPH), timeout=2000
    )
    assert panel.text() == "a cat on a\nmat"


def test_finish_shows_the_result_and_stops_the_cursor(panel: ResultsPanel) -> None:
    panel.start("pets.jpg", "detect cat ; dog")
    panel.append_text("<loc0102><loc0102><loc0922><loc0512> cat")
    panel.add_object(CAT)
    assert panel.object_rows() == 1
    text = "<loc0102><loc0102><loc0922><loc0512> cat ; <loc0000><loc0768><loc0512><loc1023> dog"
    panel.finish(_result(text + "<eos>", [CAT, DOG]))
    assert not panel.cursor_timer.isActive()
    assert panel.text() == text
    assert panel.text_edit.toPlainText() == text  # no glyph, no <eos>
    assert panel.object_rows() == 2
    assert panel.table.item(0, 1).text() == "cat"
    assert panel.table.item(0, 2).text() == "20, 11, 100, 90"
    swatch = panel.table.item(1, 0).data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(swatch, QColor) and swatch.isValid()
    assert panel.timings_label.text() == (
        "Image 1.92 s · first token 5.81 s · 7.1 tokens/s · 24 tokens"
    )
    assert panel.status_label.isHidden()


def test_timings_say_when_the_image_was_cached() -> None:
    values = {**TIMINGS.to_dict(), "image_cached": True, "image_encode_s": 0.0}
    assert format_timings(values, 1) == "Image cached · first token 5.81 s · 7.1 tokens/s · 1 token"
    assert format_timings({}, 0) == ""


def test_cancelled_run_keeps_what_was_generated(panel: ResultsPanel) -> None:
    panel.start("pets.jpg", "caption en")
    panel.append_text("a cat")
    panel.finish(_result("a cat", [], stop="cancelled", tokens=12))
    assert panel.text() == "a cat"
    assert not panel.status_label.isHidden()
    assert panel.status_label.text() == "Cancelled — kept the 12 tokens generated so far."


def test_token_limit_is_explained(panel: ResultsPanel) -> None:
    panel.finish(_result("a long", [], stop="max_tokens", tokens=128))
    assert "128" in panel.status_label.text()


def test_error_is_shown_in_red_and_stops_streaming(panel: ResultsPanel) -> None:
    panel.start("pets.jpg", "caption en")
    panel.append_text("a")
    panel.show_error("The image cannot be read.")
    assert not panel.cursor_timer.isActive()
    assert panel.text_edit.toPlainText() == "a"
    assert panel.status_label.text() == "The image cannot be read."
    assert "color" in panel.status_label.styleSheet()


def test_copy_buttons_fill_the_clipboard(panel: ResultsPanel) -> None:
    assert not panel.copy_text_button.isEnabled()
    assert not panel.copy_detections_button.isEnabled()
    panel.finish(_result("cat<eos>", [CAT, DOG]))
    panel.copy_text_button.click()
    assert QGuiApplication.clipboard().text() == "cat"
    panel.copy_detections_button.click()
    copied = json.loads(QGuiApplication.clipboard().text())
    assert copied == [CAT.to_dict(), DOG.to_dict()]


def test_show_record_reopens_a_history_result(panel: ResultsPanel) -> None:
    record = HistoryRecord(
        image_path="/photos/pets.jpg", image_sha256="", image_width=200, image_height=100,
        task="detect", prompt="detect cat", model="paligemma2-3b-mix-224",
        quantization="Q4_K_M", text="<loc0102><loc0102><loc0922><loc0512> cat<eos>",
        objects=[CAT], timings=TIMINGS.to_dict(), stop_reason="eos", tokens=[1, 2, 3, 4, 5],
    )
    panel.show_record(record)
    assert "pets.jpg" in panel.image_label.text()
    assert panel.prompt_label.text() == "detect cat"
    assert panel.text() == "<loc0102><loc0102><loc0922><loc0512> cat"
    assert panel.object_rows() == 1
    assert panel.timings_label.text().endswith("5 tokens")


def test_clear_empties_everything(panel: ResultsPanel) -> None:
    panel.start("pets.jpg", "caption en")
    panel.append_text("words")
    panel.add_object(CAT)
    panel.clear()
    assert panel.text() == "" and panel.text_edit.toPlainText() == ""
    assert panel.object_rows() == 0
    assert not panel.cursor_timer.isActive()
    assert panel.image_label.text() == ""
