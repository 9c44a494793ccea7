"""Issue 17's rules for the window, in the Qt-free core (app/session, app/history): what
is exported for byte-identical images, what the results list shows, what the settings
remember, how a queue row and a History row describe a result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.history import HistoryRecord, HistoryStore
from app.history.record_words import local_time, record_state, same_bytes_note
from app.session import ModelIdentity, ResultStore
from app.session.job import CANCELLED, DONE, FAILED, SKIPPED
from app.session.model_choice import (
    ModelRequest,
    kept_until_loaded,
    remember_loaded,
    start_folder,
)
from app.session.queue_note import queue_status
from app.session.result_store import listed_results
from app.settings import Settings

MODEL = ModelIdentity("pair-1", "tiny", "F16")
DIGEST = "ab" * 32


def _record(**changes) -> HistoryRecord:
    base = HistoryRecord(image_path="/img/photo_00.png", image_sha256=DIGEST, image_width=10,
                         image_height=10, task="caption", prompt="caption en",
                         model=MODEL.name, quantization=MODEL.quant, text="a cat<eos>",
                         stop_reason="eos", tokens=[5, 6, 1], pair_id=MODEL.pair_id,
                         max_new_tokens=128, created="2026-11-30T10:00:00+00:00")
    return dataclasses.replace(base, **changes)


@pytest.fixture
def store(tmp_path: Path):
    history = HistoryStore(tmp_path / "history.sqlite3")
    yield ResultStore(history)
    history.close()


# 1: a byte-identical copy is exported under its own name -------------------------------

def test_a_byte_identical_copy_is_exported_like_any_other_image(store):
    store.history.add(_record())
    images = [(DIGEST, Path("/img/photo_00.png")), (DIGEST, Path("/img/copy_of_photo_00.png"))]
    exported = store.for_images(images)
    assert [Path(r.image_path).name for r in exported] == ["photo_00.png",
                                                           "copy_of_photo_00.png"]
    assert all(r.text == "a cat<eos>" for r in exported)
    # The same image queued once still gives one record per result.
    assert len(store.for_images(images[:1])) == 1


def test_the_panel_says_when_an_answer_was_found_for_identical_bytes():
    record = _record()
    assert same_bytes_note(record, "/img/photo_00.png") == ""
    note = same_bytes_note(record, "/img/copy_of_photo_00.png")
    assert "identical bytes" in note and "photo_00.png" in note


# 2: History reopen of an older result --------------------------------------------------

def test_an_older_result_reopened_is_listed_and_older_ones_are_shown_on_request():
    old = _record(id=1, created="2026-11-30T10:00:00+00:00", max_new_tokens=128,
                  text="a long answer<eos>")
    new = _record(id=2, created="2026-11-30T10:05:00+00:00", max_new_tokens=16)
    other = _record(id=3, task="ocr", prompt="ocr", created="2026-11-30T10:06:00+00:00")
    listing = listed_results([old, new, other])
    assert [r.id for r in listing.records] == [3, 2] and listing.older == 1
    reopened = listed_results([old, new, other], keep_id=1)
    assert [r.id for r in reopened.records] == [3, 2, 1] and reopened.older == 0
    every = listed_results([old, new, other], show_older=True)
    assert [r.id for r in every.records] == [3, 2, 1] and every.older == 0


def test_the_store_lists_a_reopened_older_result(store):
    old_id = store.history.add(_record(created="2026-11-30T10:00:00+00:00"))
    store.history.add(_record(created="2026-11-30T10:05:00+00:00", text="newer<eos>"))
    assert [r.id for r in store.for_image(DIGEST, "/img/photo_00.png")] != [old_id]
    ids = [r.id for r in store.listing(DIGEST, "/img/photo_00.png", keep_id=old_id).records]
    assert old_id in ids and len(ids) == 2


# 3: History says the state and the seconds ---------------------------------------------

def test_a_record_says_whether_it_finished_was_cut_or_cancelled():
    assert record_state(_record(stop_reason="eos")) == "finished"
    assert record_state(_record(stop_reason="")) == "finished"
    assert record_state(_record(stop_reason="max_tokens")) == "cut at the limit"
    assert record_state(_record(stop_reason="cancelled")) == "cancelled, partial"
    assert local_time("2026-11-30T10:00:41+00:00", seconds=True).endswith(":41")
    assert local_time("not a time", seconds=True) == "not a time"


# 4: only a model that loaded is remembered ---------------------------------------------

def test_a_quantization_is_remembered_only_once_it_has_loaded():
    old = Settings(model_folder="/models/tiny", quantization="auto", max_new_tokens=64)
    new = dataclasses.replace(old, quantization="Q2_K", max_new_tokens=32,
                              model_folder="/models/other")
    saved_now = kept_until_loaded(old, new)
    assert saved_now.quantization == "auto" and saved_now.model_folder == "/models/tiny"
    assert saved_now.max_new_tokens == 32  # everything else is taken at once
    loaded = remember_loaded(saved_now, ModelRequest(Path("/models/other"), "Q2_K"))
    assert loaded is not None
    assert (loaded.model_folder, loaded.quantization) == ("/models/other", "Q2_K")
    assert remember_loaded(loaded, ModelRequest(Path("/models/other"), "Q2_K")) is None


# 5: a cancelled re-run leaves a finished image done -------------------------------------

def test_a_cancelled_rerun_of_a_finished_image_leaves_it_done():
    assert queue_status(CANCELLED, has_finished_result=True) == ("done", "re-run cancelled")
    assert queue_status(CANCELLED, has_finished_result=False) == ("ready", "cancelled")
    assert queue_status(DONE, False) == ("done", "")
    assert queue_status(SKIPPED, True) == ("done", "stored result")
    assert queue_status(FAILED, True, "The model failed.") == ("failed", "The model failed.")


# 12: Choose Model Folder opens in a folder that exists ----------------------------------

def test_choose_model_folder_starts_in_the_nearest_existing_folder(tmp_path: Path):
    missing = tmp_path / "data" / "models"
    settings = Settings(model_folder=None, models_dir=str(missing))
    assert start_folder(settings) == tmp_path
    missing.mkdir(parents=True)
    assert start_folder(settings) == missing
    model = missing / "tiny"
    model.mkdir()
    assert start_folder(dataclasses.replace(settings, model_folder=str(model))) == model
    gone = Settings(model_folder=None, models_dir="")
    assert start_folder(gone) == Path.home()
