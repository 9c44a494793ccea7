"""Export actions: every kind writes its files through replaced dialogs; errors are told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from app.history.history_record import HistoryRecord
from app.tasks.parsing import DetectedObject
from app.ui import export_actions
from app.ui.export_actions import EXPORT_KINDS, export_records

CAT = DetectedObject("cat", (20.0, 10.0, 100.0, 90.0), (102, 102, 922, 512))
Button = QMessageBox.StandardButton


def _record(image: Path, task: str, text: str, objects: list[DetectedObject] | None = None
            ) -> HistoryRecord:
    return HistoryRecord(
        image_path=str(image), image_sha256="ab" * 32, image_width=200, image_height=100,
        task=task, prompt="caption en" if task == "caption" else "detect cat",
        model="paligemma2-3b-mix-224", quantization="Q4_K_M", text=text,
        objects=objects or [], stop_reason="eos", tokens=[1], created="2025-01-01T00:00:00+00:00",
    )


@pytest.fixture
def parent(qtbot: QtBot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def records(tmp_path: Path) -> list[HistoryRecord]:
    images = tmp_path / "images"
    images.mkdir()
    return [
        _record(images / "a.jpg", "caption", "a cat on a mat<eos>"),
        _record(images / "b.jpg", "caption", "a dog<eos>"),
        _record(images / "a.jpg", "detect", "<loc0102><loc0102><loc0922><loc0512> cat<eos>",
                [CAT]),
    ]


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Messages shown to the user, (text, error); no real message box ever opens."""
    shown: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        export_actions, "show_message",
        lambda parent, title, text, error=False: shown.append((text, error)),
    )
    return shown


def _save_to(monkeypatch: pytest.MonkeyPatch, path: Path | None) -> None:
    monkeypatch.setattr(export_actions, "ask_save_path", lambda *args: path)


def test_every_kind_has_a_menu_label() -> None:
    assert [kind for kind, _ in EXPORT_KINDS] == ["jsonl", "csv", "coco", "yolo", "yolo_seg",
                                                  "mask_png", "captions"]
    assert dict(EXPORT_KINDS)["coco"] == "Detections as COCO JSON…"


def test_jsonl(parent: QWidget, records: list[HistoryRecord], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch, messages: list[tuple[str, bool]]) -> None:
    _save_to(monkeypatch, tmp_path / "out")  # no extension typed: ".jsonl" is added
    summary = export_records(parent, records, "jsonl")
    assert summary is not None and summary.written == [tmp_path / "out.jsonl"]
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["task"] for line in lines] == ["caption", "caption", "detect"]
    assert messages == []


def test_csv_and_coco(parent: QWidget, records: list[HistoryRecord], tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch, messages: list[tuple[str, bool]]) -> None:
    _save_to(monkeypatch, tmp_path / "results.csv")
    assert export_records(parent, records, "csv") is not None
    assert (tmp_path / "results.csv").read_text().startswith("image,task,prompt")
    _save_to(monkeypatch, tmp_path / "coco.json")
    assert export_records(parent, records, "coco") is not None
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert [category["name"] for category in coco["categories"]] == ["cat"]


def test_cancelled_dialog_writes_nothing(
    parent: QWidget, records: list[HistoryRecord], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, messages: list[tuple[str, bool]],
) -> None:
    _save_to(monkeypatch, None)
    assert export_records(parent, records, "csv") is None
    monkeypatch.setattr(export_actions, "ask_directory", lambda *args: None)
    assert export_records(parent, records, "yolo") is None
    assert messages == []


def test_yolo(parent: QWidget, records: list[HistoryRecord], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch, messages: list[tuple[str, bool]]) -> None:
    out = tmp_path / "labels"
    monkeypatch.setattr(export_actions, "ask_directory", lambda *args: out)
    summary = export_records(parent, records, "yolo")
    assert summary is not None
    assert sorted(path.name for path in summary.written) == ["a.txt", "classes.txt"]
    assert (out / "classes.txt").read_text() == "cat\n"


def test_yolo_asks_before_writing_among_text_files(
    parent: QWidget, records: list[HistoryRecord], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, messages: list[tuple[str, bool]],
) -> None:
    images = Path(records[0].image_path).parent
    (images / "a.txt").write_text("my caption")
    monkeypatch.setattr(export_actions, "ask_directory", lambda *args: images)
    asked: list[str] = []
    monkeypatch.setattr(export_actions, "confirm",
                        lambda parent, title, text: asked.append(text) or False)
    assert export_records(parent, records, "yolo") is None
    assert asked and (images / "a.txt").read_text() == "my caption"


def test_captions_ask_before_overwriting(
    parent: QWidget, records: list[HistoryRecord], monkeypatch: pytest.MonkeyPatch,
    messages: list[tuple[str, bool]],
) -> None:
    images = Path(records[0].image_path).parent
    (images / "a.txt").write_text("old a")
    (images / "b.txt").write_text("old b")
    asked: list[Path] = []

    def answer(parent: QWidget, path: Path) -> QMessageBox.StandardButton:
        asked.append(path)
        return Button.NoToAll

    monkeypatch.setattr(export_actions, "ask_overwrite", answer)
    summary = export_records(parent, records, "captions")
    assert summary is not None and summary.written == []
    assert len(asked) == 1  # "No to all" answered for both files
    assert (images / "a.txt").read_text() == "old a"
    assert len(summary.skipped) == 2

    asked.clear()
    monkeypatch.setattr(export_actions, "ask_overwrite",
                        lambda parent, path: asked.append(path) or Button.YesToAll)
    summary = export_records(parent, records, "captions")
    assert summary is not None and len(summary.written) == 2 and len(asked) == 1
    assert (images / "a.txt").read_text() == "a cat on a mat"
    assert (images / "b.txt").read_text() == "a dog"


def test_a_write_error_is_told_in_a_sentence(
    parent: QWidget, records: list[HistoryRecord], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, messages: list[tuple[str, bool]],
) -> None:
    _save_to(monkeypatch, tmp_path / "missing-folder" / "out.csv")
    assert export_records(parent, records, "csv") is None
    assert len(messages) == 1
    text, error = messages[0]
    assert error and "could not write" in text


def test_nothing_of_the_right_kind_is_explained(
    parent: QWidget, records: list[HistoryRecord], monkeypatch: pytest.MonkeyPatch,
    messages: list[tuple[str, bool]],
) -> None:
    monkeypatch.setattr(export_actions, "ask_save_path",
                        lambda *args: pytest.fail("must not ask for a file"))
    captions_only = [record for record in records if record.task == "caption"]
    assert export_records(parent, captions_only, "coco") is None
    assert "detections" in messages[-1][0]
    assert export_records(parent, [], "jsonl") is None
    assert messages[-1] == ("There are no results to export yet.", False)


def _segment_record(image: Path) -> HistoryRecord:
    import numpy as np

    from app.tasks.mask_rle import ObjectMask

    mask = np.zeros((100, 200), bool)
    mask[20:60, 30:90] = True
    masked = DetectedObject("cat", (30.0, 20.0, 90.0, 60.0), (205, 153, 614, 460),
                            tuple(range(16)), ObjectMask.from_array(mask))
    return _record(image, "segment", "", [masked])


def test_mask_pngs_and_yolo_seg(parent: QWidget, records: list[HistoryRecord], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch,
                                messages: list[tuple[str, bool]]) -> None:
    assert export_records(parent, records, "mask_png") is None  # detections have no masks
    assert "None of these results have masks" in messages[-1][0]
    segmented = [*records, _segment_record(Path(records[0].image_path))]
    out = tmp_path / "masks"
    monkeypatch.setattr(export_actions, "ask_directory", lambda *args: out)
    summary = export_records(parent, segmented, "mask_png")
    assert summary is not None
    assert sorted(p.name for p in summary.written) == ["a-01-cat.png", "masks.json"]
    seg_out = tmp_path / "seg"
    monkeypatch.setattr(export_actions, "ask_directory", lambda *args: seg_out)
    assert export_records(parent, segmented, "yolo_seg") is not None
    lines = (seg_out / "a.txt").read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("0 ") for line in lines)
    assert len(lines[0].split()) == 9  # the detection: its box's 4 corners
    assert len(lines[1].split()) > 9  # the mask: its outline's corners
