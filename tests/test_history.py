"""History: SQLite round trips, search, skip-done lookups, recovery from a damaged file."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.engine.events import ResultEvent, Timings
from app.errors import HistoryError
from app.history import (
    HistoryRecord,
    HistoryStore,
    default_history_path,
    file_sha256,
    history_schema,
)
from app.history.history_schema import SCHEMA_VERSION
from app.tasks.parsing import DetectedObject
from app.tasks.task_runner import TaskResult

CAT = DetectedObject("cat", (10.5, 20.25, 110.0, 90.75), (200, 10, 900, 1000))
MASKED = DetectedObject("dog", (0.0, 0.0, 50.0, 40.0), (0, 0, 400, 256), tuple(range(16)))
TIMINGS = Timings(0.5, 0.25, 0.8, 1.5, 20.0, 260, False)


def _record(**changes: object) -> HistoryRecord:
    base = HistoryRecord(
        image_path="/photos/cat.jpg",
        image_sha256="ab" * 32,
        image_width=640,
        image_height=480,
        task="detect",
        prompt="detect cat ; dog",
        model="paligemma2-3b-mix-224",
        quantization="Q4_K_M",
        text="<loc0200><loc0010><loc0900><loc1000> cat<eos>",
        objects=[CAT, MASKED],
        timings=TIMINGS.to_dict(),
        stop_reason="eos",
        tokens=[256200, 256010, 1, 2],
        created="2025-01-01T10:00:00+00:00",
    )
    return replace(base, **changes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = HistoryStore(tmp_path / "data" / "history.sqlite3")
    yield history
    history.close()


def test_default_path_is_in_the_user_data_folder() -> None:
    assert default_history_path().name == "history.sqlite3"
    assert default_history_path().parent.name == "PaliDesk"


def test_round_trip_keeps_every_field_and_rebuilds_objects(store: HistoryStore) -> None:
    record = _record()
    record_id = store.add(record)
    loaded = store.get(record_id)
    assert loaded == replace(record, id=record_id)
    assert loaded is not None
    assert loaded.objects[0] == CAT and loaded.objects[0].seg_codes is None
    assert loaded.objects[1].seg_codes == tuple(range(16))
    assert isinstance(loaded.objects[0].box, tuple) and isinstance(loaded.objects[0].loc, tuple)
    assert loaded.timings == TIMINGS.to_dict()
    assert loaded.image_size == (640, 480)
    assert store.warning is None


def test_an_image_name_that_is_not_utf8_is_stored_and_found(store: HistoryStore) -> None:
    # On Linux a file name is bytes; Python hands a non-UTF-8 one over with lone
    # surrogates, which SQLite's text binding refuses (UnicodeEncodeError, not a
    # HistoryError): the finished result was lost and the image's results list failed.
    path = os.fsdecode(b"/photos/caf\xe9.jpg")
    record_id = store.add(_record(image_path=path))
    assert store.get(record_id).image_path == path  # type: ignore[union-attr]
    assert [r.id for r in store.for_image("", path)] == [record_id]
    assert [r.id for r in store.recent(search="caf")] == [record_id]


def test_get_of_an_unknown_id_is_none(store: HistoryStore) -> None:
    assert store.get(12345) is None


def test_ids_are_not_reused_after_delete(store: HistoryStore) -> None:
    first = store.add(_record())
    assert store.delete(first) is True
    assert store.delete(first) is False
    assert store.get(first) is None
    assert store.add(_record()) > first


def test_clear_removes_everything(store: HistoryStore) -> None:
    for _ in range(3):
        store.add(_record())
    store.clear()
    assert store.recent() == []


def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as first:
        record_id = first.add(_record())
    with HistoryStore(path) as again:
        assert again.get(record_id) == replace(_record(), id=record_id)


def test_database_is_versioned_and_in_wal_mode(store: HistoryStore) -> None:
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_recent_is_newest_first_with_a_limit(store: HistoryStore) -> None:
    store.add(_record(created="2025-01-01T10:00:00+00:00", prompt="a"))
    store.add(_record(created="2025-03-01T10:00:00+00:00", prompt="c"))
    store.add(_record(created="2025-02-01T10:00:00+00:00", prompt="b"))
    store.add(_record(created="2025-03-01T10:00:00+00:00", prompt="d"))  # same second as c
    assert [r.prompt for r in store.recent()] == ["d", "c", "b", "a"]
    assert [r.prompt for r in store.recent(limit=2)] == ["d", "c"]


def test_recent_filters_by_task(store: HistoryStore) -> None:
    store.add(_record(task="caption", prompt="caption en", objects=[]))
    store.add(_record())
    assert [r.task for r in store.recent(task="caption")] == ["caption"]
    assert len(store.recent(task="detect")) == 1
    assert store.recent(task="ocr") == []


def test_search_matches_path_prompt_or_output(store: HistoryStore) -> None:
    store.add(_record(image_path="/holiday/beach.png", prompt="caption en", text="A dog runs"))
    store.add(_record(image_path="/work/desk.png", prompt="ocr", text="INVOICE 42"))
    store.add(_record(image_path="/work/cat.png", prompt="answer en what colour?", text="red"))

    def found(text: str) -> list[str]:
        return sorted(Path(r.image_path).name for r in store.recent(search=text))

    assert found("holiday") == ["beach.png"]
    assert found("invoice") == ["desk.png"]  # case-insensitive
    assert found("colour") == ["cat.png"]
    assert found("/work/") == ["cat.png", "desk.png"]
    assert found("zebra") == []
    assert len(store.recent(search="")) == 3


def test_search_treats_wildcards_literally(store: HistoryStore) -> None:
    store.add(_record(text="100% sure"))
    store.add(_record(text="1000 sure"))
    store.add(_record(text="snake_case"))
    store.add(_record(text="snakeXcase"))
    assert [r.text for r in store.recent(search="100%")] == ["100% sure"]
    assert [r.text for r in store.recent(search="e_c")] == ["snake_case"]


def test_search_and_task_combine(store: HistoryStore) -> None:
    store.add(_record(task="caption", text="a cat"))
    store.add(_record(task="detect", text="cat"))
    assert [r.task for r in store.recent(task="caption", search="cat")] == ["caption"]


KEYS = {"image_sha256": "ab" * 32, "prompt": "detect cat ; dog", "pair_id": "pair-1",
        "quantization": "Q4_K_M", "options_key": "greedy"}


def test_find_returns_matching_results_newest_first(store: HistoryStore) -> None:
    older = store.add(_record(created="2025-01-01T10:00:00+00:00", pair_id="pair-1"))
    newer = store.add(_record(created="2025-01-02T10:00:00+00:00", pair_id="pair-1"))
    assert [r.id for r in store.find(**KEYS)] == [newer, older]


@pytest.mark.parametrize(
    "change",
    [
        {"image_sha256": "cd" * 32},
        {"prompt": "detect cat"},
        {"pair_id": "pair-2"},  # another model, even under the same display name
        {"quantization": "Q8_0"},
        {"options_key": "sample:t=0.7:k=0:p=1:seed=0"},
    ],
)
def test_find_needs_every_key_to_match(store: HistoryStore, change: dict[str, str]) -> None:
    store.add(_record(pair_id="pair-1"))
    assert store.find(**KEYS)
    assert not store.find(**{**KEYS, **change})


def test_find_ignores_cancelled_runs_and_unhashed_images(store: HistoryStore) -> None:
    store.add(_record(stop_reason="cancelled", pair_id="pair-1"))
    store.add(_record(image_sha256="", pair_id="pair-1"))
    assert not store.find(**KEYS)
    assert not store.find(**{**KEYS, "image_sha256": ""})
    store.add(_record(stop_reason="max_tokens", pair_id="pair-1"))  # finished, if truncated
    assert store.find(**KEYS)


def test_a_version_1_history_is_upgraded_and_keeps_its_results(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(
        f"BEGIN; {history_schema._STEPS[1]}; PRAGMA user_version = 1; COMMIT;")
    connection.execute(
        "INSERT INTO results (created, image_path, image_sha256, image_width, image_height, "
        "task, prompt, model, quantization, output_text, objects, timings, stop_reason, "
        "tokens) VALUES ('2025-01-01T10:00:00+00:00', '/a.png', 'ab', 1, 1, 'caption', "
        "'caption en', 'checkpoint', 'F16', 'x', '[]', '{}', 'eos', '[1]')")
    connection.commit()
    connection.close()
    with HistoryStore(path) as upgraded:
        (record,) = upgraded.recent()
        assert record.text == "x" and record.pair_id == "" and record.options_key == "greedy"
        upgraded.add(_record(pair_id="pair-1"))
        assert upgraded.find(**KEYS)



def test_file_sha256_hashes_the_bytes(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG fake bytes" * 100_000)
    copy = tmp_path / "renamed.png"
    copy.write_bytes(image.read_bytes())
    expected = hashlib.sha256(image.read_bytes()).hexdigest()
    assert file_sha256(image) == expected == file_sha256(copy)


def _task_result(image: str = "/some/where.png") -> TaskResult:
    event = ResultEvent(
        tokens=[256200, 256010, 256900, 257000, 1],
        text="<loc0200><loc0010><loc0900><loc1000> cat<eos>",
        prompt="detect cat",
        prompt_tokens=[2, 5, 6],
        stop_reason="eos",
        timings=TIMINGS,
        image_size=(300, 150),
    )
    return TaskResult(image=image, task="detect", prompt="detect cat", result=event, objects=[CAT])


def test_from_task_result_copies_the_result_and_hashes_the_image(tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(b"image bytes")
    record = HistoryRecord.from_task_result(_task_result(), image, "paligemma2-3b", "Q8_0")
    assert record.id is None
    assert record.image_path == str(image)
    assert record.image_sha256 == hashlib.sha256(b"image bytes").hexdigest()
    assert (record.image_width, record.image_height) == (300, 150)
    assert (record.task, record.prompt) == ("detect", "detect cat")
    assert (record.model, record.quantization) == ("paligemma2-3b", "Q8_0")
    assert record.text.endswith("cat<eos>")
    assert record.objects == [CAT]
    assert record.timings == TIMINGS.to_dict()
    assert record.stop_reason == "eos"
    assert record.tokens == [256200, 256010, 256900, 257000, 1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record.created)


def test_from_task_result_without_a_readable_image_still_records(
    tmp_path: Path, store: HistoryStore
) -> None:
    record = HistoryRecord.from_task_result(
        _task_result("<image>"), tmp_path / "gone.png", "m", "F16"
    )
    assert record.image_sha256 == ""
    store.add(record)
    assert len(store.recent()) == 1


def test_to_dict_uses_the_cli_json_names() -> None:
    data = _record(id=7).to_dict()
    assert data["id"] == 7 and data["image"] == "/photos/cat.jpg"
    assert data["image_size"] == [640, 480]
    assert data["objects"] == [CAT.to_dict(), MASKED.to_dict()]
    for key in (
        "task",
        "prompt",
        "text",
        "tokens",
        "stop_reason",
        "timings",
        "model",
        "quantization",
        "created",
        "image_sha256",
    ):
        assert key in data


def test_garbage_file_is_set_aside_and_a_new_history_started(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database " * 200)
    with HistoryStore(path) as history:
        assert history.warning is not None
        backups = list(tmp_path.glob("history.sqlite3.bad-*"))
        assert len(backups) == 1
        assert re.fullmatch(r"history\.sqlite3\.bad-\d{8}-\d{6}", backups[0].name)
        assert backups[0].read_bytes() == b"this is not a database " * 200
        assert str(backups[0]) in history.warning and "new, empty history" in history.warning
        record_id = history.add(_record())
        assert history.get(record_id) is not None


def test_damaged_pages_are_detected_on_open(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as history:
        for index in range(200):
            history.add(_record(image_path=f"/p/{index}.png", text="words " * 50))
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 6] = b"\xff" * (4096 * 4)  # keep the header, wreck the pages
    path.write_bytes(bytes(data))
    with HistoryStore(path) as history:
        assert history.warning is not None and "damaged" in history.warning
        assert history.recent() == []
    assert len(list(tmp_path.glob("history.sqlite3.bad-*"))) == 1


def test_a_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    before = path.read_bytes()
    with pytest.raises(HistoryError, match="newer version of PaliDesk"):
        HistoryStore(path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.bad-*"))


def test_unopenable_location_raises_a_history_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(HistoryError, match="cannot create the folder"):
        HistoryStore(blocker / "history.sqlite3")


def test_a_full_disk_becomes_a_plain_sentence(store: HistoryStore) -> None:
    store.add(_record())
    # Capping the page count is how SQLite itself simulates a full disk.
    connection = store._connection
    assert connection is not None
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(HistoryError, match="disk is full"):
        store.add(_record(text="x" * 200_000))
    connection.execute("PRAGMA max_page_count = 1073741823")
    assert len(store.recent()) == 1  # the failed add left nothing half-written


def test_close_is_idempotent_and_closed_stores_refuse_work(tmp_path: Path) -> None:
    history = HistoryStore(tmp_path / "h.sqlite3")
    history.close()
    history.close()
    with pytest.raises(RuntimeError):
        history.recent()


def test_threads_can_share_one_store(store: HistoryStore) -> None:
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for index in range(25):
                store.add(_record(image_path=f"/t{number}/{index}.png"))
                store.recent(limit=5)
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.recent(limit=1000)) == 100


def test_store_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "history.sqlite3"
    with HistoryStore(path):
        assert path.exists()
    assert os.path.isdir(path.parent)
