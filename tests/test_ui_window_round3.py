"""Issue 17 (the window, round 3), each item reproduced through the real window, worker
thread and engine on a tiny model, or on the dialog concerned."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog
from test_ui_main_window import LOAD_TIMEOUT_MS, Recorder, run_and_wait
from test_ui_session_window import (
    FIXTURE_IMAGES,
    _close,
    _export_jsonl,
    _images,
    _queue,
    _run_all,
    _window,
)

from app.hardware import detect
from app.history import HistoryStore
from app.history.history_record import HistoryRecord
from app.progress import ProgressEvent
from app.settings import Settings, SettingsStore
from app.tasks.parsing import DetectedObject
from app.ui.evaluate_dialog import EvalProgress
from app.ui.main_window import MainWindow
from app.ui.settings_dialog import SettingsDialog
from app.ui.speed_test_dialog import SpeedTestDialog
from app.ui.tools_menu import add_tools_menu


@pytest.fixture
def tiny(converted) -> Path:
    return converted("pg2-tiny-224")


def _saved(tmp_path: Path) -> Settings:
    return SettingsStore(tmp_path / "config" / "settings.json").load().settings


# 1 ---------------------------------------------------------------------------------------

def test_a_byte_copy_is_exported_and_shown_under_its_own_name(qtbot, tmp_path, tiny,
                                                              monkeypatch):
    paths = _images(tmp_path, names=FIXTURE_IMAGES[:2])
    copy = tmp_path / "photos" / "copy_of_noise.png"
    shutil.copy(paths[0], copy)
    win = _window(qtbot, tmp_path, tiny, last_task="caption")
    _queue(qtbot, win, [*paths, copy])
    _run_all(qtbot, win)
    assert "1 already done" in win.status.batch_label.full_text()
    exported = _export_jsonl(win, tmp_path / "out.jsonl", monkeypatch)
    assert sorted(Path(r["image"]).name for r in exported) == sorted(
        [*FIXTURE_IMAGES[:2], "copy_of_noise.png"])
    # Selecting the copy titles the panel with its own name and says where the answer is from.
    win.queue.set_current(win.queue.items()[2].key)
    assert win.results_panel.image_label.text().startswith("copy_of_noise.png")
    note = win.results_panel.source_label
    assert note.isVisible() and "identical bytes" in note.text()
    assert FIXTURE_IMAGES[0] in note.text()
    win.queue.set_current(win.queue.items()[0].key)
    assert not win.results_panel.source_label.isVisible()
    _close(win, qtbot)


# 2 ---------------------------------------------------------------------------------------

def test_history_reopen_shows_exactly_the_older_result_and_older_ones_on_request(
        qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, last_task="caption", max_new_tokens=12)
    _queue(qtbot, win, _images(tmp_path, names=FIXTURE_IMAGES[:1]))
    older = run_and_wait(qtbot, win)
    win.apply_settings(dataclasses.replace(win.settings, max_new_tokens=3))
    newer = run_and_wait(qtbot, win)
    assert older.text != newer.text
    assert [r.id for r in win.results_panel.records()] == [newer.id]  # the newest only
    win.open_record(win.history.get(older.id))
    assert win.results_panel.shown_id() == older.id
    assert win.results_panel.text().startswith(older.text.removesuffix("<eos>")[:10])
    assert {r.id for r in win.results_panel.records()} == {older.id, newer.id}
    # Elsewhere and back: the list is the newest again, the older one offered on request.
    win.display.show_item(win.queue.current())
    assert [r.id for r in win.results_panel.records()] == [newer.id]
    check = win.results_panel.older_check
    assert check.isVisibleTo(win) and "1 older" in check.text()
    check.setChecked(True)
    assert [r.id for r in win.results_panel.records()] == [newer.id, older.id]
    _close(win, qtbot)


# 4 and 5 ---------------------------------------------------------------------------------

def test_a_failed_quantization_is_not_remembered_and_recovery_clears_the_status(
        qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, max_new_tokens=40)
    _queue(qtbot, win, _images(tmp_path))
    win.run_all()
    win.apply_settings(Settings(**{**win.settings.__dict__, "quantization": "Q2_K"}))
    qtbot.waitUntil(lambda: not win.session.busy and not win.loading, timeout=60_000)
    assert win.model is None
    assert "could not be loaded" in win.status.batch_label.full_text()
    assert _saved(tmp_path).quantization == "F16"  # the failed choice is not saved
    win.close()  # a start after this opens on the model that worked
    qtbot.waitUntil(lambda: not win.engine.thread.isRunning(), timeout=60_000)
    assert _saved(tmp_path).quantization == "F16"
    win.history.close()

    again = _window(qtbot, tmp_path, tiny)
    assert again.model is not None and again.model.quant == "F16"
    _queue(qtbot, again, _images(tmp_path))
    again.run_all()
    again.apply_settings(Settings(**{**again.settings.__dict__, "quantization": "Q2_K"}))
    qtbot.waitUntil(lambda: not again.session.busy and not again.loading, timeout=60_000)
    # The user recovers with a quantization that loads: it is remembered, and the status
    # line no longer says the model could not be loaded.
    again.apply_settings(Settings(**{**again.settings.__dict__, "quantization": "Q8_0"}))
    qtbot.waitUntil(lambda: again.model is not None, timeout=LOAD_TIMEOUT_MS)
    text = again.status.batch_label.full_text()
    assert "could not be loaded" not in text and "loaded now" in text
    assert _saved(tmp_path).quantization == "Q8_0"
    _close(again, qtbot)


def test_esc_on_a_rerun_leaves_a_finished_image_done(qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, last_task="caption", max_new_tokens=30)
    _queue(qtbot, win, _images(tmp_path, names=FIXTURE_IMAGES[1:2]))
    run_and_wait(qtbot, win)
    recorder = Recorder(win.engine.worker, on_token=lambda n: win.cancel() if n == 2 else None)
    partial = run_and_wait(qtbot, win)
    assert recorder.tokens and partial.cancelled
    item = win.queue.items()[0]
    assert (item.status, item.note) == ("done", "re-run cancelled")
    # 12: the note has a line of its own, not elided after the image size.
    row = win.queue.list_widget.item(0).text().splitlines()
    assert row[-1] == "re-run cancelled" and "…" not in row[-1]
    _close(win, qtbot)


# 7 and 12 (status bar naming) -----------------------------------------------------------

def test_at_start_the_window_says_the_saved_model_is_loading(qtbot, tmp_path, tiny):
    store = SettingsStore(tmp_path / "config" / "settings.json")
    store.save(Settings(model_folder=str(tiny), quantization="F16", threads=2))
    win = MainWindow(store, HistoryStore(tmp_path / "h.sqlite3"), tmp_path / "cache")
    qtbot.addWidget(win)
    win.show()
    assert win.loading
    panel_text = win.first_run.text.text()
    assert win.first_run.isVisible() and "Loading" in panel_text
    assert "No model loaded" not in panel_text and not win.first_run.button.isVisible()
    loading_label = win.status.model_label.text()
    qtbot.waitUntil(lambda: win.model is not None, timeout=LOAD_TIMEOUT_MS)
    assert not win.first_run.isVisible()
    # The status bar names the model the same way while loading and once loaded.
    assert loading_label == f"Loading {win.model.name}…"
    assert win.status.model_label.text().startswith(win.model.name)
    _close(win, qtbot)


# 8 and 9 ---------------------------------------------------------------------------------

def test_reopening_a_result_of_a_queued_image_selects_it_without_a_notice(
        qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, last_task="caption")
    _queue(qtbot, win, _images(tmp_path, names=FIXTURE_IMAGES[:2]))
    win.queue.set_current(win.queue.items()[1].key)
    record = run_and_wait(qtbot, win)
    win.queue.set_current(win.queue.items()[0].key)
    notices: list[str] = []
    win.queue.notice.connect(notices.append)
    win.open_record(win.history.get(record.id))
    assert notices == [] and win.notices.text() == ""
    assert win.queue.current().path == Path(record.image_path)
    assert len(win.queue.items()) == 2
    _close(win, qtbot)


def test_a_batch_selecting_an_image_after_images_were_added_leaves_one_row_selected(
        qtbot, tmp_path):
    # Run All on some images, add more, Run All again: the batch selects each image it
    # runs; the row selected before the images were added must not stay highlighted.
    win = _window(qtbot, tmp_path, None)
    first = _images(tmp_path, names=FIXTURE_IMAGES[:2])
    _queue(qtbot, win, first)
    win.queue.set_current(win.queue.items()[1].key)
    _queue(qtbot, win, _images(tmp_path, names=FIXTURE_IMAGES[2:], folder="more"))
    win.queue.set_current(win.queue.items()[1].key)  # _queue selected the first
    win.queue.add_paths(_images(tmp_path, names=FIXTURE_IMAGES[:1], folder="later"))
    win.queue.wait_for_thumbnails()
    win.queue.set_current(win.queue.items()[0].key)
    listing = win.queue.list_widget
    assert [listing.row(row) for row in listing.selectedItems()] == [0]
    win.queue.add_paths(_images(tmp_path, names=FIXTURE_IMAGES[1:2], folder="last"))
    win.queue.wait_for_thumbnails()
    win.queue.select_next()  # View › Next Image (Alt+Down) after images were added
    assert [listing.row(row) for row in listing.selectedItems()] == [1]
    assert win.queue.remove_selected() == 1 and len(win.queue.items()) == 4
    _close(win)


# 10 --------------------------------------------------------------------------------------

def test_the_fit_note_describes_the_selected_quantization(qtbot, tiny):
    dialog = SettingsDialog(Settings(model_folder=str(tiny), quantization="auto"),
                            hardware=detect())
    qtbot.addWidget(dialog)
    automatic = dialog.fit_label.text()
    assert automatic
    dialog.quant_combo.setCurrentIndex(dialog.quant_combo.findData("F16"))
    note = dialog.fit_label.text()
    assert note.startswith("F16") and note != automatic
    reopened = SettingsDialog(Settings(model_folder=str(tiny), quantization="F16"),
                              hardware=detect())
    qtbot.addWidget(reopened)
    assert reopened.fit_label.text().startswith("F16")


# 11 --------------------------------------------------------------------------------------

def test_evaluate_progress_counts_images_per_quantization():
    progress = EvalProgress(quants=3)
    texts = [progress.text(ProgressEvent(q, done, 9, m), 1.0) for q, done, m in (
        ("F16", 0, "loading F16"), ("F16", 1, "F16: a.png"), ("F16", 3, "F16: c.png"),
        ("Q8_0", 3, "loading Q8_0"), ("Q8_0", 5, "Q8_0: b.png"), ("Q4_K_M", 8, "Q4_K_M: c.png"))]
    assert texts[1] == "F16: a.png · image 1 of 3 · quantization 1 of 3 · about 8 s left"
    assert "image 3 of 3 · quantization 1 of 3" in texts[2]
    assert "image 0 of 3 · quantization 2 of 3" in texts[3]
    assert "image 2 of 3 · quantization 2 of 3" in texts[4]
    assert "image 2 of 3 · quantization 3 of 3" in texts[5]
    assert not any("of 9 images" in t for t in texts)


def test_the_speed_table_shows_every_column_at_its_default_size(qtbot, tiny):
    dialog = SpeedTestDialog(tiny)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    table = dialog.table
    last = table.columnCount() - 1
    assert "GPU" in table.horizontalHeaderItem(last).text()
    right = table.columnViewportPosition(last) + table.columnWidth(last)
    assert right <= table.viewport().width()
    header_text = table.horizontalHeaderItem(last).text().splitlines()[-1]
    assert table.columnWidth(last) >= table.fontMetrics().horizontalAdvance(header_text)


def test_the_speed_test_menu_entry_opens_a_dialog_so_it_ends_with_an_ellipsis(
        qtbot, tmp_path):
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    tools = add_tools_menu(window, lambda: None, tmp_path)
    assert all(a.text().endswith("…") for a in tools.menu.actions())


# 12 --------------------------------------------------------------------------------------

def test_choose_model_folder_opens_in_a_folder_that_exists(qtbot, tmp_path, monkeypatch):
    win = _window(qtbot, tmp_path, None, models_dir=str(tmp_path / "nowhere" / "models"))
    asked: list[Path] = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda _parent, _title, start, *a: asked.append(Path(start)) or "")
    win.choose_model_folder()
    assert asked == [tmp_path] and asked[0].is_dir()
    _close(win)


def test_a_segment_result_lists_several_rows_at_1280_by_800(qtbot, tmp_path):
    win = _window(qtbot, tmp_path, None)
    win.resize(1280, 800)
    qtbot.waitExposed(win)
    objects = [DetectedObject(f"thing {i}", (i, i, i + 10.0, i + 10.0),
                              (i, i, i + 10, i + 10)) for i in range(8)]
    record = HistoryRecord(image_path=str(tmp_path / "a.png"), image_sha256="", image_width=64,
                           image_height=64, task="segment", prompt="segment thing",
                           model="tiny", quantization="F16",
                           text="<loc0001><loc0001><loc0011><loc0011> thing<eos>",
                           objects=objects, stop_reason="eos", tokens=[1] * 40, id=1)
    win.results_panel.set_records([record])
    QTest.qWait(50)
    table = win.results_panel.table
    rows = table.viewport().height() // max(table.rowHeight(0), 1)
    assert rows >= 6, f"only {rows} rows visible"
    _close(win)
