"""The task panel: the exact prompt of every preset, incomplete tasks, language, warnings."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from app.settings.settings import Settings
from app.tasks.languages import LANGUAGES
from app.tasks.presets import PRESETS, PT_WARNING
from app.tasks.prompts import TaskKind
from app.ui.task_panel import TaskPanel


@pytest.fixture
def panel(qtbot: QtBot) -> TaskPanel:
    widget = TaskPanel()
    qtbot.addWidget(widget)
    return widget


@pytest.mark.parametrize(
    ("key", "typed", "expected"),
    [
        ("cap", None, "cap en"),
        ("caption", None, "caption en"),
        ("describe", None, "describe en"),
        ("ocr", None, "ocr"),
        ("ask", "what is the cat doing?", "answer en what is the cat doing?"),
        ("question", "a red umbrella", "question en a red umbrella"),
        ("detect", "cat; dog ;; cat", "detect cat ; dog"),
        ("segment", "car", "segment car"),
        ("custom", "  my prefix  ", "  my prefix  "),  # sent verbatim, spaces and all
    ],
)
def test_preview_shows_the_exact_prompt_of_every_preset(
    panel: TaskPanel, key: str, typed: str | None, expected: str
) -> None:
    panel.set_preset(key)
    assert panel.input_edit.isHidden() == (typed is None)
    if typed is not None:
        panel.input_edit.setText(typed)
    assert panel.prompt() == expected
    assert panel.preview.text() == expected
    assert panel.preview.styleSheet() == ""
    assert panel.run_button.isEnabled()
    request = panel.request()
    assert request is not None and request.kind is panel.preset().kind


def test_every_preset_is_listed_once() -> None:
    assert [preset.key for preset in PRESETS] == [
        "cap", "caption", "describe", "ocr", "ask", "question", "detect", "segment", "custom"
    ]


@pytest.mark.parametrize("key", ["ask", "question", "detect", "segment", "custom"])
def test_an_incomplete_task_shows_why_and_cannot_run(panel: TaskPanel, key: str) -> None:
    panel.set_preset(key)
    panel.input_edit.setText("   ")
    assert panel.request() is None
    assert panel.prompt() is None
    problem = panel.problem()
    assert problem
    assert panel.preview.text() == problem
    assert "color" in panel.preview.styleSheet()
    assert not panel.run_button.isEnabled()
    assert not panel.run_all_button.isEnabled()
    assert panel.run_button.toolTip() == problem


def test_each_input_keeps_its_own_text(panel: TaskPanel) -> None:
    panel.set_preset("ask")
    panel.input_edit.setText("how many?")
    panel.set_preset("detect")
    assert panel.input_edit.text() == ""
    panel.input_edit.setText("cat")
    panel.set_preset("segment")  # detect and segment share the object list
    assert panel.input_edit.text() == "cat"
    panel.set_preset("ask")
    assert panel.input_edit.text() == "how many?"


def test_typing_announces_the_change(panel: TaskPanel, qtbot: QtBot) -> None:
    panel.set_preset("custom")
    with qtbot.waitSignal(panel.request_changed, timeout=1000):
        panel.input_edit.setText("x")


def test_language_combo_lists_every_language(panel: TaskPanel) -> None:
    combo = panel.language_combo
    assert combo.count() == len(LANGUAGES) == 35
    assert combo.currentText() == "English (en)"
    assert combo.findText("French (fr)") >= 0


@pytest.mark.parametrize(
    ("key", "uses_language"),
    [("cap", True), ("describe", True), ("ocr", False), ("ask", True), ("question", True),
     ("detect", False), ("segment", False), ("custom", False)],
)
def test_language_is_enabled_only_where_the_prompt_names_one(
    panel: TaskPanel, key: str, uses_language: bool
) -> None:
    panel.set_preset(key)
    assert panel.language_combo.isEnabled() == uses_language


def test_changing_the_language_changes_the_prompt(panel: TaskPanel) -> None:
    panel.set_preset("describe")
    panel.language_combo.setCurrentIndex(panel.language_combo.findData("fr"))
    assert panel.prompt() == "describe fr"
    assert panel.language() == "fr"


def test_a_pt_checkpoint_warns_about_task_presets(panel: TaskPanel) -> None:
    panel.set_checkpoint_kind("pt")
    panel.set_preset("caption")
    assert not panel.warning_label.isHidden()
    assert panel.warning_label.text() == PT_WARNING
    assert "mix" in PT_WARNING and "fine-tuning" in PT_WARNING
    panel.set_preset("custom")
    assert panel.warning_label.isHidden()


@pytest.mark.parametrize("kind", ["mix", "unknown"])
def test_no_warning_without_grounds(panel: TaskPanel, kind: str) -> None:
    panel.set_checkpoint_kind(kind)
    for preset in PRESETS:
        panel.set_preset(preset.key)
        assert panel.warning_label.isHidden(), preset.key


def test_busy_enables_only_cancel(panel: TaskPanel, qtbot: QtBot) -> None:
    assert not panel.cancel_button.isEnabled()
    panel.set_busy(True)
    assert not panel.run_button.isEnabled()
    assert not panel.run_all_button.isEnabled()
    assert panel.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.cancel_requested, timeout=1000):
        panel.cancel_button.click()
    panel.set_busy(False)
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_run_buttons_emit_their_signals(panel: TaskPanel, qtbot: QtBot) -> None:
    with qtbot.waitSignal(panel.run_requested, timeout=1000):
        panel.run_button.click()
    with qtbot.waitSignal(panel.run_all_requested, timeout=1000):
        panel.run_all_button.click()


def test_run_can_be_disabled_with_a_reason(panel: TaskPanel) -> None:
    panel.set_run_enabled(False, "Load a model first.")
    assert not panel.run_button.isEnabled()
    assert panel.run_button.toolTip() == "Load a model first."
    panel.set_run_enabled(True)
    assert panel.run_button.isEnabled() and panel.run_all_button.isEnabled()


def test_settings_round_trip(panel: TaskPanel) -> None:
    saved = Settings(last_task="detect", language="fr", detect_classes="cat; dog")
    panel.load_settings(saved)
    assert panel.preset().key == "detect"
    assert panel.input_edit.text() == "cat; dog"
    assert panel.language() == "fr"
    assert panel.prompt() == "detect cat ; dog"
    out = Settings()
    panel.save_settings(out)
    assert (out.last_task, out.language, out.detect_classes) == ("detect", "fr", "cat; dog")


def test_caption_style_round_trip(panel: TaskPanel) -> None:
    panel.load_settings(Settings(last_task="caption", caption_style="describe", language="de"))
    assert panel.preset().key == "describe"
    assert panel.prompt() == "describe de"
    panel.set_preset("cap")
    out = Settings()
    panel.save_settings(out)
    assert (out.last_task, out.caption_style) == (TaskKind.CAPTION.value, "cap")


def test_unknown_saved_values_fall_back(panel: TaskPanel) -> None:
    panel.load_settings(Settings(last_task="nonsense", language="xx"))
    assert panel.preset().key == "caption"
    assert panel.language() == "en"
