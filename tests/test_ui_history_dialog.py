"""The history dialog: search and filter, reopen, delete, clear all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel
from pytestqt.qtbot import QtBot

from app.history.history_record import HistoryRecord
from app.history.history_store import HistoryStore
from app.tasks.parsing import DetectedObject
from app.ui.history_dialog import HistoryDialog, output_summary

CAT = DetectedObject("cat", (20.0, 10.0, 100.0, 90.0), (102, 102, 922, 512))


def _record(image: str, task: str, prompt: str, text: str, created: str,
            objects: list[DetectedObject] | None = None) -> HistoryRecord:
    return HistoryRecord(
        image_path=image, image_sha256="ab" * 32, image_width=200, image_height=100,
        task=task, prompt=prompt, model="paligemma2-3b-mix-224", quantization="Q4_K_M",
        text=text, objects=objects or [], stop_reason="eos", tokens=[1, 2], created=created,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "history.sqlite3") as history:
        history.add(_record("/photos/beach.jpg", "caption", "caption en",
                            "a dog on the beach\nsecond line<eos>", "2025-01-01T10:00:00+00:00"))
        history.add(_record("/photos/sofa.jpg", "detect", "detect cat",
                            "<loc0102><loc0102><loc0922><loc0512> cat<eos>",
                            "2025-01-02T10:00:00+00:00", [CAT]))
        history.add(_record("/photos/sign.png", "ocr", "ocr", "STOP<eos>",
                            "2025-01-03T10:00:00+00:00"))
        yield history


@pytest.fixture
def dialog(qtbot: QtBot, store: HistoryStore) -> HistoryDialog:
    widget = HistoryDialog(store)
    qtbot.addWidget(widget)
    return widget


def _select(dialog: HistoryDialog, row: int) -> None:
    dialog.table.selectionModel().select(
        dialog.table.model().index(row, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )


def test_lists_recent_results_newest_first(dialog: HistoryDialog) -> None:
    assert dialog.table.rowCount() == 3
    assert [dialog.table.item(row, 1).text() for row in range(3)] == [
        "sign.png", "sofa.jpg", "beach.jpg"
    ]
    assert dialog.table.item(0, 3).text() == "paligemma2-3b-mix-224 / Q4_K_M"
    assert dialog.table.item(2, 5).text() == "a dog on the beach"
    assert dialog.table.item(1, 5).text() == "1 object: cat"
    assert not dialog.reopen_button.isEnabled() and not dialog.delete_button.isEnabled()


def test_search_filters(dialog: HistoryDialog) -> None:
    dialog.search_edit.setText("BEACH")
    assert [record.image_path for record in dialog.records()] == ["/photos/beach.jpg"]
    dialog.search_edit.setText("")
    assert dialog.table.rowCount() == 3


def test_task_filter(dialog: HistoryDialog) -> None:
    dialog.task_combo.setCurrentIndex(dialog.task_combo.findData("detect"))
    assert [record.task for record in dialog.records()] == ["detect"]


def test_reopen_emits_the_record(dialog: HistoryDialog, qtbot: QtBot) -> None:
    _select(dialog, 1)
    assert dialog.reopen_button.isEnabled()
    with qtbot.waitSignal(dialog.record_opened, timeout=1000) as blocker:
        dialog.reopen_button.click()
    record = blocker.args[0]
    assert isinstance(record, HistoryRecord)
    assert record.image_path == "/photos/sofa.jpg" and record.objects == [CAT]


def test_double_click_reopens(dialog: HistoryDialog, qtbot: QtBot) -> None:
    _select(dialog, 2)
    with qtbot.waitSignal(dialog.record_opened, timeout=1000) as blocker:
        dialog.table.cellDoubleClicked.emit(2, 0)
    assert blocker.args[0].image_path == "/photos/beach.jpg"


def test_delete_removes_the_selected_record(dialog: HistoryDialog, store: HistoryStore) -> None:
    _select(dialog, 0)
    dialog.delete_button.click()
    assert [record.image_path for record in store.recent()] == [
        "/photos/sofa.jpg", "/photos/beach.jpg"
    ]
    assert dialog.table.rowCount() == 2


def test_clear_all_asks_first(
    dialog: HistoryDialog, store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dialog, "confirm_clear", lambda: False)
    dialog.clear_button.click()
    assert len(store.recent()) == 3
    monkeypatch.setattr(dialog, "confirm_clear", lambda: True)
    dialog.clear_button.click()
    assert store.recent() == []
    assert dialog.table.rowCount() == 0


def test_output_summary_of_empty_detection() -> None:
    record = _record("/a.jpg", "detect", "detect cat", "<eos>", "2025-01-01T00:00:00+00:00")
    assert output_summary(record) == "nothing found"


def test_export_writes_the_selection_or_everything_listed(dialog: HistoryDialog, tmp_path,
                                                          monkeypatch) -> None:
    import json

    from app.ui import export_actions

    target = tmp_path / "out.jsonl"
    monkeypatch.setattr(export_actions, "ask_save_path", lambda *a, **k: target)
    _select(dialog, 1)
    dialog.export("jsonl")
    assert [json.loads(line)["image"] for line in target.read_text().splitlines()] == [
        "/photos/sofa.jpg"]
    dialog.table.clearSelection()
    dialog.task_combo.setCurrentIndex(dialog.task_combo.findData("ocr"))  # filtered by task
    dialog.export("jsonl")
    assert [json.loads(line)["task"] for line in target.read_text().splitlines()] == ["ocr"]
    assert dialog.status_label.text().startswith("Exported 1 file")


def test_the_table_tells_a_cancelled_partial_from_a_finished_run_to_the_second(
        qtbot: QtBot, tmp_path: Path) -> None:
    # Issue 17 item 3: two runs of one prompt in the same minute, one cancelled.
    with HistoryStore(tmp_path / "h.sqlite3") as history:
        for stop, second in (("eos", "05"), ("cancelled", "41"), ("max_tokens", "50")):
            record = _record("/photos/beach.jpg", "caption", "caption en", "a dog",
                             f"2025-01-01T10:00:{second}+00:00")
            history.add(HistoryRecord(**{**record.__dict__, "stop_reason": stop}))
        dialog = HistoryDialog(history)
        qtbot.addWidget(dialog)
        headers = [dialog.table.horizontalHeaderItem(c).text()
                   for c in range(dialog.table.columnCount())]
        state = headers.index("State")
        assert [dialog.table.item(r, state).text() for r in range(3)] == [
            "cut at the limit", "cancelled, partial", "finished"]
        times = [dialog.table.item(r, 0).text() for r in range(3)]
        assert len(set(times)) == 3 and all(t[-3:-2] == ":" for t in times)
        assert [t[-2:] for t in times] == ["50", "41", "05"]
