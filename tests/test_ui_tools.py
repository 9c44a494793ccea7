"""Tools › Evaluate… and Tools › Test Speed on This Machine…, driven with pytest-qt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMainWindow
from pytestqt.qtbot import QtBot

from app.models.measured_speed import read_speeds
from app.ui.evaluate_dialog import EvaluateDialog
from app.ui.speed_test_dialog import SpeedTestDialog
from app.ui.tools_menu import add_tools_menu
from conftest import IMAGES


@pytest.fixture
def model_folder(converted, tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(converted("pg2-tiny-224"), folder)
    return folder


def test_tools_menu_sits_before_help(qtbot: QtBot, tmp_path: Path) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    window.menuBar().addMenu("&File")
    window.menuBar().addMenu("&Help")
    tools = add_tools_menu(window, lambda: None, tmp_path)
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&Tools", "&Help"]
    assert [a.text() for a in tools.menu.actions()] == ["Evaluate…",
                                                        "Test Speed on This Machine…",
                                                        "Local Server…"]
    dialog = tools.show_evaluate()
    qtbot.addWidget(dialog)
    assert "No model folder is chosen" in dialog.model_label.text()
    assert not dialog.run_button.isEnabled()


def test_evaluate_runs_in_the_background_and_shows_results(
        qtbot: QtBot, model_folder: Path, tmp_path: Path) -> None:
    dialog = EvaluateDialog(model_folder, tmp_path / "reports")
    qtbot.addWidget(dialog)
    assert list(dialog.quant_boxes) == ["F32", "F16", "Q8_0", "Q4_K_M"]
    dialog.quant_boxes["Q4_K_M"].setChecked(False)
    dialog.quant_boxes["F32"].setChecked(False)
    dialog.images_edit.setText(str(IMAGES))
    dialog.task_combo.setCurrentText("caption")
    dialog.limit_spin.setValue(2)
    dialog.start()
    assert not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.open_button.isEnabled(), timeout=300_000)
    # F32, the best installed quantization, is the reference and runs first.
    rows = [dialog.results.item(r, 0).text() for r in range(dialog.results.rowCount())]
    assert rows == ["F32", "F16", "Q8_0"]
    headers = [dialog.results.horizontalHeaderItem(c).text()
               for c in range(dialog.results.columnCount())]
    assert "Agrees with F32" in headers and "Tokens/s" in headers
    assert dialog.results.item(0, headers.index("Images")).text() == "2"
    assert dialog.results.item(0, headers.index("Agrees with F32")).text() == "100 %"
    assert dialog.report_path is not None and dialog.report_path.name == "report.html"
    report = json.loads((dialog.report_path.parent / "report.json").read_text())
    assert report["task"] == "caption" and report["images"] == 2
    assert "Done" in dialog.status.text()
    assert set(read_speeds(model_folder)) == {"F32", "F16", "Q8_0"}


def test_evaluate_cancel_keeps_the_dialog_usable(qtbot: QtBot, model_folder: Path,
                                                 tmp_path: Path) -> None:
    dialog = EvaluateDialog(model_folder, tmp_path / "reports")
    qtbot.addWidget(dialog)
    dialog.images_edit.setText(str(IMAGES))
    dialog.task_combo.setCurrentText("caption")
    dialog.start()
    dialog.cancel()
    qtbot.waitUntil(lambda: dialog.run_button.isEnabled(), timeout=300_000)
    assert not dialog.cancel_button.isEnabled()
    assert "stopped early" in dialog.status.text()


def test_evaluate_bad_labels_say_why(qtbot: QtBot, model_folder: Path, tmp_path: Path) -> None:
    dialog = EvaluateDialog(model_folder, tmp_path / "reports")
    qtbot.addWidget(dialog)
    dialog.truth_edit.setText(str(tmp_path / "missing.json"))
    dialog.task_combo.setCurrentText("detect")
    dialog.start()
    qtbot.waitUntil(lambda: dialog.run_button.isEnabled(), timeout=60_000)
    assert "does not exist" in dialog.status.text()
    assert "c62828" in dialog.status.styleSheet()


def test_speed_test_measures_and_keeps_the_figures(qtbot: QtBot, model_folder: Path) -> None:
    dialog = SpeedTestDialog(model_folder)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 0  # nothing measured yet
    for quant, box in dialog.quant_boxes.items():
        box.setChecked(quant == "Q8_0")
    dialog.start()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=300_000)
    assert "Measured 1 quantization" in dialog.status.text()
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 0).text() == "Q8_0"
    assert float(dialog.table.item(0, 1).text()) > 0  # tokens/s
    speed = read_speeds(model_folder)["Q8_0"]
    assert speed.decode_tokens_per_s > 0 and speed.first_token_s > 0
    assert speed.first_token_cached_s is not None and speed.peak_rss_bytes > 0
    # A new dialog shows what was measured before.
    again = SpeedTestDialog(model_folder)
    qtbot.addWidget(again)
    assert again.table.rowCount() == 1


def test_the_real_window_with_the_hook_stops_a_running_test_on_close(
        qtbot: QtBot, model_folder: Path, tmp_path: Path) -> None:
    from app.history import HistoryStore
    from app.settings import Settings, SettingsStore
    from app.ui.main_window import MainWindow

    store = SettingsStore(tmp_path / "settings.json")
    store.save(Settings(model_folder=str(model_folder), quantization="Q8_0", threads=1))
    window = MainWindow(store, HistoryStore(tmp_path / "history.sqlite3"), tmp_path / "cache")
    qtbot.addWidget(window)
    tools = window.tools_menu  # added by the window itself
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles[-2:] == ["Tools", "Help"] and titles.count("Tools") == 1
    window.show()
    qtbot.waitUntil(lambda: window.model is not None, timeout=120_000)
    dialog = tools.show_speed_test()
    assert dialog.model_folder == model_folder
    dialog.start()
    assert dialog.task is not None and dialog.task.running
    window.close()  # must cancel and join the speed test's thread
    assert not dialog.task.running
    window.history.close()
