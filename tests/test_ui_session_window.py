"""Issue 8's defects, each reproduced through the real window, worker thread and engine on a
tiny model: results kept, shown and exported; snapshots; model swaps; cancels; closing."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QKeySequence
from test_ui_main_window import LOAD_TIMEOUT_MS, Outcomes, Recorder, run_and_wait

from app.cli.main import _parser, with_default_verb
from app.engine.engine import Engine
from app.history import HistoryStore
from app.settings import Settings, SettingsStore
from app.ui import export_actions, image_queue
from app.ui.engine_worker import device_text
from app.ui.main_window import MainWindow
from conftest import IMAGES

FIXTURE_IMAGES = ("noise_97x150.png", "shapes_320x240.png", "strokes_500x500.png")


def _window(qtbot, tmp_path: Path, folder: Path | None, **overrides) -> MainWindow:
    store = SettingsStore(tmp_path / "config" / "settings.json")
    settings = Settings(model_folder=str(folder) if folder else None, quantization="F16",
                        threads=1, last_task="detect", detect_classes="cat",
                        max_new_tokens=8)
    for key, value in overrides.items():
        setattr(settings, key, value)
    store.save(settings)
    win = MainWindow(store, HistoryStore(tmp_path / "data" / "history.sqlite3"),
                     tmp_path / "cache")
    qtbot.addWidget(win)
    win.show()
    if folder is not None:
        qtbot.waitUntil(lambda: not win.loading, timeout=LOAD_TIMEOUT_MS)
    return win


def _close(win: MainWindow, qtbot=None) -> None:
    win.close()
    if qtbot is not None:
        qtbot.waitUntil(lambda: not win.engine.thread.isRunning(), timeout=60_000)
    win.history.close()


def _images(tmp_path: Path, names=FIXTURE_IMAGES, folder: str = "photos") -> list[Path]:
    target = tmp_path / folder
    target.mkdir(exist_ok=True)
    paths = []
    for name in names:
        paths.append(target / name)
        shutil.copy(IMAGES / name, paths[-1])
    return paths


def _queue(qtbot, win: MainWindow, paths: list[Path]) -> None:
    win.queue.add_paths(paths)
    qtbot.waitUntil(lambda: all(i.status != "loading" for i in win.queue.items()),
                    timeout=20_000)
    win.queue.set_current(win.queue.items()[0].key)


def _run_all(qtbot, win: MainWindow, timeout_ms: int = 120_000) -> None:
    win.run_all()
    qtbot.waitUntil(lambda: not win.session.busy, timeout=timeout_ms)


def _export_jsonl(win: MainWindow, target: Path, monkeypatch) -> list[dict]:
    monkeypatch.setattr(export_actions, "ask_save_path", lambda *a, **k: target)
    target.unlink(missing_ok=True)
    win.export("jsonl")
    if not target.exists():
        return []
    return [json.loads(line) for line in target.read_text().splitlines()]


@pytest.fixture
def tiny(converted) -> Path:
    return converted("pg2-tiny-224")


# 1 ---------------------------------------------------------------------------------------

def test_skipped_images_show_their_stored_result_and_export_after_a_restart(
        qtbot, tmp_path, tiny, monkeypatch):
    paths = _images(tmp_path)
    first = _window(qtbot, tmp_path, tiny)
    _queue(qtbot, first, paths)
    _run_all(qtbot, first)
    assert len(first.history.recent()) == 3
    _close(first, qtbot)

    again = _window(qtbot, tmp_path, tiny)  # a new start: same settings and history
    _queue(qtbot, again, [tmp_path / "photos"])
    _run_all(qtbot, again)
    assert again.status.batch_label.full_text().startswith(
        "Run all finished: 3 of 3 · 3 already done")
    assert len(again.history.recent()) == 3  # nothing ran again
    assert {i.note for i in again.queue.items()} == {"stored result"}
    # The skipped image on screen shows its stored result, boxes included.
    shown = again.results_panel.records()
    assert shown and shown[0].image_path == str(again.queue.current().path)
    assert again.results_panel.text()
    exported = _export_jsonl(again, tmp_path / "out.jsonl", monkeypatch)
    assert sorted(Path(r["image"]).name for r in exported) == sorted(FIXTURE_IMAGES)
    _close(again, qtbot)


def test_identical_bytes_under_two_names_run_once_and_both_show_the_result(
        qtbot, tmp_path, tiny):
    paths = _images(tmp_path, names=("noise_97x150.png",))
    twin = tmp_path / "photos" / "twin.png"
    shutil.copy(paths[0], twin)
    win = _window(qtbot, tmp_path, tiny)
    _queue(qtbot, win, [paths[0], twin])
    _run_all(qtbot, win)
    assert len(win.history.recent()) == 1
    assert "1 already done" in win.status.batch_label.full_text()
    win.queue.set_current(win.queue.items()[1].key)
    assert win.results_panel.records() and win.results_panel.text()
    _close(win, qtbot)


# 2 ---------------------------------------------------------------------------------------

def test_raising_max_new_tokens_needs_no_reload_and_reaches_the_job(qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny)
    loaded = win.model
    _queue(qtbot, win, _images(tmp_path, names=("noise_97x150.png",)))
    win.apply_settings(Settings(**{**win.settings.__dict__, "max_new_tokens": 1500}))
    assert not win.loading and win.model is loaded  # no reload
    outcomes = Outcomes(win.engine.worker)
    win.run_current()
    assert win.session.running.options.max_new_tokens == 1500
    qtbot.waitUntil(lambda: bool(outcomes.items), timeout=120_000)
    record = outcomes.items[-1].record
    assert record.max_new_tokens == 1500
    # It ended on its own (eos) or at the new limit: never at the old 512.
    assert record.stop_reason == "eos" or len(record.tokens) == 1500
    _close(win, qtbot)


def test_the_engine_generates_past_512_tokens_and_refuses_more_than_its_context(tiny):
    from app.engine.events import GenerationOptions
    from app.errors import EngineError
    from app.model_files.model_folder import ModelFolder

    engine = Engine()
    engine.load(ModelFolder(tiny).resolve("F16"))
    try:
        result = engine.run(IMAGES / "noise_97x150.png", "caption en",
                            GenerationOptions(max_new_tokens=600, stop_at_eos=False))
        assert len(result.tokens) == 600 and result.stop_reason == "max_tokens"
        with pytest.raises(EngineError, match="At most 2048 new tokens"):
            engine.run(IMAGES / "noise_97x150.png", "caption en",
                       GenerationOptions(max_new_tokens=3000))
    finally:
        engine.unload()


# 3 ---------------------------------------------------------------------------------------

def test_every_result_of_an_image_is_listed_and_exported_and_a_cancel_keeps_the_finished_one(
        qtbot, tmp_path, tiny, monkeypatch):
    win = _window(qtbot, tmp_path, tiny, max_new_tokens=30)
    _queue(qtbot, win, _images(tmp_path, names=("shapes_320x240.png",)))
    for preset in ("cap", "caption", "ocr", "detect"):
        win.task_panel.set_preset(preset)
        run_and_wait(qtbot, win)
    assert len(win.results_panel.records()) == 4
    assert len(_export_jsonl(win, tmp_path / "all.jsonl", monkeypatch)) == 4

    # Re-run OCR and cancel it after 3 tokens: the finished OCR result stays listed.
    win.task_panel.set_preset("ocr")
    recorder = Recorder(win.engine.worker, on_token=lambda n: win.cancel() if n == 3 else None)
    partial = run_and_wait(qtbot, win)
    assert recorder.tokens and partial.stop_reason == "cancelled"
    listed = win.results_panel.records()
    ocr = [r for r in listed if r.prompt == "ocr"]
    assert [r.cancelled for r in ocr] == [True, False]  # partial first, the finished kept
    assert "cancelled" in win.results_panel.listed_titles()[0]
    # Exports leave the partial result out unless asked.
    assert len(_export_jsonl(win, tmp_path / "all.jsonl", monkeypatch)) == 4
    win.actions_.export_cancelled.setChecked(True)
    assert len(_export_jsonl(win, tmp_path / "all.jsonl", monkeypatch)) == 5
    win.actions_.export_cancelled.setChecked(False)
    win.actions_.export_only_task.setChecked(True)  # only OCR, the selected task
    assert [r["prompt"] for r in _export_jsonl(win, tmp_path / "o.jsonl", monkeypatch)] == [
        "ocr"]
    _close(win, qtbot)


# 4 ---------------------------------------------------------------------------------------

def test_a_swap_to_a_missing_quantization_during_run_all_stops_in_one_defined_state(
        qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, max_new_tokens=40)
    _queue(qtbot, win, _images(tmp_path))
    started = Outcomes(win.engine.worker)
    win.run_all()
    qtbot.waitUntil(lambda: bool(started.items), timeout=60_000)  # the first image is done
    win.apply_settings(Settings(**{**win.settings.__dict__, "quantization": "Q2_K"}))
    qtbot.waitUntil(lambda: not win.session.busy and not win.loading, timeout=60_000)
    assert win.model is None and win.session.model is None
    text = win.status.batch_label.full_text()
    assert text.startswith("Run all stopped") and "could not be loaded" in text
    stored = win.history.recent()
    ended = [o for o in started.items if o.record is not None]
    assert len(stored) == len(ended)  # every finished image has its record, no more
    assert all(r.quantization == "F16" for r in stored)
    assert all(i.status != "error" for i in win.queue.items())  # all still runnable
    assert "No model is loaded" in win.notices.text()
    # The rejected choice is not saved: the next start loads the model that worked.
    assert SettingsStore(tmp_path / "config" / "settings.json").load().settings \
        .model_folder == str(tiny)
    _close(win, qtbot)


def test_a_swap_during_run_all_attributes_each_result_to_the_model_that_made_it(
        qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, max_new_tokens=40)
    _queue(qtbot, win, _images(tmp_path))
    outcomes = Outcomes(win.engine.worker)
    win.run_all()
    qtbot.waitUntil(lambda: win.session.running is not None
                    and win.session.running.job_id > 0, timeout=60_000)
    win.apply_settings(Settings(**{**win.settings.__dict__, "quantization": "Q4_K_M"}))
    qtbot.waitUntil(lambda: not win.session.busy and not win.loading, timeout=120_000)
    assert win.model.quant == "Q4_K_M"
    assert "finished: 3 of 3" in win.status.batch_label.full_text()
    by_image = {Path(r.image_path).name: r.quantization for r in win.history.recent()}
    assert len(by_image) == 3
    assert by_image[FIXTURE_IMAGES[0]] == "F16"
    assert set(by_image.values()) == {"F16", "Q4_K_M"}
    for outcome in outcomes.items:  # stamped with what ran, never the current model
        assert outcome.record.quantization == by_image[Path(outcome.record.image_path).name]
    _close(win, qtbot)


# 5 ---------------------------------------------------------------------------------------

def test_run_all_uses_the_task_as_it_was_when_pressed(qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, max_new_tokens=20)
    _queue(qtbot, win, _images(tmp_path, names=FIXTURE_IMAGES[:2]))
    win.run_all()
    win.task_panel.input_edit.setText("")  # cleared mid-batch: used to stall at "1 of 2"
    qtbot.waitUntil(lambda: not win.session.busy, timeout=60_000)
    assert [r.prompt for r in win.history.recent()] == ["detect cat", "detect cat"]
    assert "finished: 2 of 2" in win.status.batch_label.full_text()
    _close(win, qtbot)


# 6 ---------------------------------------------------------------------------------------

def test_a_failed_job_leaves_the_image_runnable_with_the_reason(qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, last_task="ask")
    _queue(qtbot, win, _images(tmp_path, names=("noise_97x150.png",)))
    win.task_panel.input_edit.setText("why " * 400)  # far over 256 prompt tokens
    outcomes = Outcomes(win.engine.worker)
    win.run_current()
    qtbot.waitUntil(lambda: not win.session.busy, timeout=60_000)
    assert outcomes.items[-1].status == "failed"
    item = win.queue.items()[0]
    assert item.status == "failed" and "too long" in item.note
    assert win.results_panel.status_label.text().startswith("The prompt is too long")
    win.task_panel.input_edit.setText("what is it?")
    assert win.actions_.run.isEnabled() and win.task_panel.run_button.isEnabled()
    record = run_and_wait(qtbot, win)
    assert record is not None and win.queue.items()[0].status == "done"
    _close(win, qtbot)


# 7 ---------------------------------------------------------------------------------------

def test_esc_while_the_next_job_waits_behind_a_load_stops_it_before_any_token(
        qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny, max_new_tokens=400)
    _queue(qtbot, win, _images(tmp_path))
    outcomes = Outcomes(win.engine.worker)
    recorder = Recorder(win.engine.worker)
    win.run_all()
    qtbot.waitUntil(lambda: bool(recorder.tokens), timeout=60_000)
    win.apply_settings(Settings(**{**win.settings.__dict__, "quantization": "Q8_0"}))
    win.cancel()  # Esc: the running job and those waiting for the load
    qtbot.waitUntil(lambda: not win.session.busy and not win.loading, timeout=60_000)
    qtbot.wait(300)
    # Only the first image ran (cut short, or done if it ended first); the others never
    # started, not even after the load.
    assert len(outcomes.items) == 1 and outcomes.items[0].status in ("cancelled", "done")
    assert len(win.history.recent()) == 1
    assert win.status.batch_label.full_text().startswith("Run all cancelled: 1 of 3")
    assert "failed" not in win.status.batch_label.full_text()
    assert "left" not in win.status.batch_label.full_text()
    _close(win, qtbot)


# 8 ---------------------------------------------------------------------------------------

def test_closing_during_a_slow_load_waits_for_it_instead_of_aborting(
        qtbot, tmp_path, tiny, monkeypatch):
    real_load = Engine.load
    loading = threading.Event()

    def slow_load(self, pair, config=None):
        loading.set()
        time.sleep(2.5)
        real_load(self, pair, config)

    monkeypatch.setattr(Engine, "load", slow_load)
    store = SettingsStore(tmp_path / "config" / "settings.json")
    store.save(Settings(model_folder=str(tiny), quantization="F16", threads=1))
    win = MainWindow(store, HistoryStore(tmp_path / "data" / "history.sqlite3"),
                     tmp_path / "cache")
    qtbot.addWidget(win)
    win.show()
    assert loading.wait(10)
    assert not win.close()  # refused for now, not aborted
    assert "Finishing" in win.status.batch_label.full_text()
    qtbot.waitUntil(lambda: not win.engine.thread.isRunning(), timeout=30_000)
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=5_000)
    assert not win.engine.worker.engine.loaded
    win.history.close()


# 10 --------------------------------------------------------------------------------------

def test_images_are_hashed_off_the_ui_thread(qtbot, tmp_path, tiny, monkeypatch):
    threads: list[str] = []
    real = image_queue.file_sha256

    def recording(path, *args):
        threads.append(threading.current_thread().name)
        return real(path, *args)

    monkeypatch.setattr(image_queue, "file_sha256", recording)
    win = _window(qtbot, tmp_path, tiny)
    _queue(qtbot, win, _images(tmp_path))
    assert all(item.sha256 for item in win.queue.items())
    _run_all(qtbot, win)
    assert threads and threading.main_thread().name not in threads
    _close(win, qtbot)


# Also in the window -----------------------------------------------------------------------

def test_settings_shortcut_includes_ctrl_comma(qtbot, tmp_path):
    win = _window(qtbot, tmp_path, None)
    shortcuts = next(a.shortcuts() for a in win.actions() if a.text() == "Preferences…")
    assert QKeySequence("Ctrl+,") in shortcuts
    _close(win)


def test_an_error_notice_disappears_once_a_model_loads(qtbot, tmp_path, tiny):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    win = _window(qtbot, tmp_path, tiny)
    win.load_model(bad)
    qtbot.waitUntil(lambda: not win.loading, timeout=LOAD_TIMEOUT_MS)
    assert "not a PaliDesk model folder" in win.notices.text()
    assert SettingsStore(tmp_path / "config" / "settings.json").load().settings \
        .model_folder == str(tiny)  # the rejected folder was not saved
    win.load_model(tiny)
    qtbot.waitUntil(lambda: win.model is not None, timeout=LOAD_TIMEOUT_MS)
    assert win.notices.text() == ""
    _close(win, qtbot)


def test_many_bad_files_dropped_at_once_give_one_notice(qtbot, tmp_path):
    win = _window(qtbot, tmp_path, None)
    bad = []
    for index in range(6):
        bad.append(tmp_path / f"broken{index}.png")
        bad[-1].write_bytes(b"not a png at all")
    (tmp_path / "notes.txt").write_text("hello")
    before = len(win.notices.history)
    win.queue.add_paths([*bad, tmp_path / "notes.txt"])
    win.queue.wait_for_thumbnails()
    assert len(win.notices.history) - before == 1
    assert "6 images cannot be read" in win.notices.history[-1]
    assert "notes.txt is not an image file" in win.notices.history[-1]
    _close(win)


def test_queue_names_elide_in_the_middle_with_the_path_in_the_tooltip(qtbot, tmp_path):
    win = _window(qtbot, tmp_path, None)
    long_name = tmp_path / ("a_very_long_holiday_photo_name_" * 4 + "end.png")
    shutil.copy(IMAGES / "noise_97x150.png", long_name)
    win.queue.add_paths([long_name])
    win.queue.wait_for_thumbnails()
    widget = win.queue.list_widget
    assert not widget.wordWrap()
    assert widget.textElideMode().name == "ElideMiddle"
    assert str(long_name) in widget.item(0).toolTip()
    shown_name = widget.item(0).text().split("\n")[0]
    assert "…" in shown_name and shown_name.endswith("end.png")  # the middle went
    _close(win)


def test_one_thread_is_singular():
    assert device_text(1) == "CPU · 1 thread" and device_text(4) == "CPU · 4 threads"


def test_a_detect_run_without_objects_says_so(qtbot, tmp_path):
    from app.history import HistoryRecord
    from app.ui.results_panel import ResultsPanel

    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.show_record(HistoryRecord(
        image_path="/x.png", image_sha256="", image_width=1, image_height=1, task="detect",
        prompt="detect cat", model="m", quantization="F16", text="nothing here<eos>",
        stop_reason="eos", tokens=[1]))
    assert panel.status_label.text() == "No objects were found in the output."


def test_a_bare_image_argument_opens_the_window_with_it():
    parser = _parser()
    args = parser.parse_args(with_default_verb(["photo.jpg"], parser))
    assert args.command == "gui" and [p.name for p in args.images] == ["photo.jpg"]
    assert with_default_verb(["run", "x.png"], parser)[0] == "run"
    assert with_default_verb(["-v", "a.png"], parser) == ["-v", "gui", "a.png"]


def test_reopening_a_history_result_selects_its_image(qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny)
    paths = _images(tmp_path, names=FIXTURE_IMAGES[:2])
    _queue(qtbot, win, paths)
    win.queue.set_current(win.queue.items()[1].key)
    record = run_and_wait(qtbot, win)
    win.queue.set_current(win.queue.items()[0].key)
    win.open_record(win.history.get(record.id))
    assert win.queue.current().path == paths[1]
    assert win.results_panel.records()[0].id == record.id
    _close(win, qtbot)


def test_the_idle_worker_encodes_the_selected_and_next_images_ahead(qtbot, tmp_path, tiny):
    win = _window(qtbot, tmp_path, tiny)
    _queue(qtbot, win, _images(tmp_path))
    cache = win.engine.worker.engine.cache
    qtbot.waitUntil(lambda: len(cache) >= 3, timeout=30_000)  # nobody pressed Run yet
    win.queue.set_current(win.queue.items()[2].key)
    record = run_and_wait(qtbot, win)
    assert record.timings["image_cached"] is True and record.timings["image_encode_s"] == 0
    _close(win, qtbot)


def test_segment_without_the_decoder_offers_it_and_with_it_jobs_carry_it(
        qtbot, tmp_path, tiny):
    from mask_weights import write_random_decoder

    from app.models.mask_decoder import import_decoder

    models_dir = tmp_path / "models"
    win = _window(qtbot, tmp_path, tiny, last_task="segment", models_dir=str(models_dir))
    _queue(qtbot, win, _images(tmp_path, names=("noise_97x150.png",)))
    win.run_current()
    assert win.session.running.mask_decoder is None  # boxes only
    assert "mask decoder" in win.notices.text()
    assert win.notices.action_button.isVisible()
    qtbot.waitUntil(lambda: not win.session.busy, timeout=60_000)
    installed = import_decoder(models_dir, write_random_decoder(tmp_path / "vae-oid.npz"))
    win.run_current()
    assert win.session.running.mask_decoder == installed
    qtbot.waitUntil(lambda: not win.session.busy, timeout=60_000)
    _close(win, qtbot)
