"""Exports: JSONL, CSV, COCO and YOLO numbers checked by hand, captions beside images,
atomic writes and disk errors in the user's words."""

from __future__ import annotations

import csv
import errno
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from app.errors import ExportError
from app.export import (
    CSV_COLUMNS,
    clean_output_text,
    export_captions_beside_images,
    export_coco,
    export_csv,
    export_jsonl,
    export_yolo,
)
from app.export.file_names import unique_stems
from app.history import HistoryRecord
from app.tasks.parsing import DetectedObject, parse_objects

# A 200 x 100 image (wider than tall) so x and y scale differently.
WIDTH, HEIGHT = 200, 100
CAT = DetectedObject("cat", (20.0, 10.0, 100.0, 90.0), (102, 102, 922, 512))
DOG = DetectedObject("dog", (150.0, 0.0, 200.0, 50.0), (0, 768, 512, 1023))


def _record(**changes: object) -> HistoryRecord:
    base = HistoryRecord(
        image_path="/data/pets/one.jpg",
        image_sha256="00" * 32,
        image_width=WIDTH,
        image_height=HEIGHT,
        task="detect",
        prompt="detect cat ; dog",
        model="paligemma2-3b-mix-224",
        quantization="Q8_0",
        text="<loc0102><loc0102><loc0922><loc0512> cat<eos>",
        objects=[CAT],
        stop_reason="eos",
        tokens=[1, 2, 3],
        created="2025-01-01T10:00:00+00:00",
    )
    return replace(base, **changes)


def _caption(image: Path, text: str, **changes: object) -> HistoryRecord:
    return _record(
        image_path=str(image),
        task="caption",
        prompt="caption en",
        text=text,
        objects=[],
        **changes,
    )


def _temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- JSONL and CSV -------------------------------------------------------------------


def test_jsonl_writes_one_full_record_per_line(tmp_path: Path) -> None:
    records = [_record(id=1), _caption(Path("/x/a.png"), "Ein Hund <eos>", id=2)]
    target = tmp_path / "out.jsonl"
    summary = export_jsonl(records, target)
    assert summary.written == [target] and summary.skipped == []
    lines = target.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in records]
    assert json.loads(lines[0])["objects"][0]["box"] == [20.0, 10.0, 100.0, 90.0]
    assert _temp_files(tmp_path) == []


def test_csv_has_one_row_per_result_with_clean_text(tmp_path: Path) -> None:
    records = [_record(), _caption(Path("/x/ü.png"), '<bos>Ein Hund, "klein"\n <eos><pad>')]
    target = tmp_path / "out.csv"
    export_csv(records, target)
    with target.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3
    detect = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    caption = dict(zip(CSV_COLUMNS, rows[2], strict=True))
    assert detect["image"] == "/data/pets/one.jpg" and detect["task"] == "detect"
    assert json.loads(detect["objects"]) == [CAT.to_dict()]
    assert detect["text"] == "<loc0102><loc0102><loc0922><loc0512> cat"
    assert (detect["model"], detect["quantization"]) == ("paligemma2-3b-mix-224", "Q8_0")
    assert detect["created"] == "2025-01-01T10:00:00+00:00"
    assert caption["image"] == "/x/ü.png"
    assert caption["text"] == 'Ein Hund, "klein"'
    assert json.loads(caption["objects"]) == []


def test_clean_output_text_drops_markers_and_space() -> None:
    assert clean_output_text("  <bos>a cat<eos><pad><pad>\n") == "a cat"
    assert clean_output_text("<eos>") == ""


# --- COCO ----------------------------------------------------------------------------


def test_coco_numbers_on_a_non_square_image(tmp_path: Path) -> None:
    target = tmp_path / "coco.json"
    export_coco([_record(objects=[CAT, DOG])], target)
    data = json.loads(target.read_text())
    assert data["images"] == [{"id": 1, "file_name": "one.jpg", "width": 200, "height": 100}]
    assert data["info"]["image_root"] == "/data/pets"
    assert data["categories"] == [
        {"id": 1, "name": "cat", "supercategory": "object"},
        {"id": 2, "name": "dog", "supercategory": "object"},
    ]
    cat, dog = data["annotations"]
    # cat: x 20..100, y 10..90 -> [20, 10, 80, 80], area 6400.
    assert cat == {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": [20.0, 10.0, 80.0, 80.0],
        "area": 6400.0,
        "iscrowd": 0,
    }
    # dog: x 150..200, y 0..50 -> [150, 0, 50, 50], area 2500.
    assert dog["bbox"] == [150.0, 0.0, 50.0, 50.0] and dog["area"] == 2500.0
    assert dog["category_id"] == 2 and dog["id"] == 2


def test_coco_from_parsed_model_output(tmp_path: Path) -> None:
    # <loc> order is y_min x_min y_max x_max, code / 1023 of each side (big_vision):
    # x: 0 -> 0, 1023 -> 200 (the right edge); y: 341/1023*100 = 33.33.., 682 -> 66.66..
    objects = parse_objects("<loc0341><loc0000><loc0682><loc1023> cat", (WIDTH, HEIGHT))
    target = tmp_path / "coco.json"
    export_coco([_record(objects=objects)], target)
    (annotation,) = json.loads(target.read_text())["annotations"]
    assert annotation["bbox"] == [0.0, 33.33, 200.0, 33.33]
    assert annotation["area"] == pytest.approx(200 * 100 / 3, abs=0.01)


def test_coco_categories_keep_first_appearance_order(tmp_path: Path) -> None:
    bird = DetectedObject("bird", (0.0, 0.0, 10.0, 10.0), (0, 0, 100, 50))
    records = [
        _record(image_path="/d/a.jpg", objects=[DOG, CAT]),
        _record(image_path="/d/b.jpg", objects=[CAT, bird]),
    ]
    target = tmp_path / "coco.json"
    export_coco(records, target)
    data = json.loads(target.read_text())
    assert [(c["id"], c["name"]) for c in data["categories"]] == [
        (1, "dog"),
        (2, "cat"),
        (3, "bird"),
    ]
    assert [(a["image_id"], a["category_id"]) for a in data["annotations"]] == [
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 3),
    ]
    assert [i["file_name"] for i in data["images"]] == ["a.jpg", "b.jpg"]


def test_coco_uses_only_spatial_records_and_the_newest_rerun(tmp_path: Path) -> None:
    records = [
        _caption(Path("/d/c.jpg"), "a cat"),
        _record(image_path="/d/a.jpg", objects=[CAT], created="2025-01-01T00:00:00+00:00"),
        _record(image_path="/d/a.jpg", objects=[DOG], created="2025-02-01T00:00:00+00:00"),
        _record(image_path="/d/a.jpg", task="segment", prompt="segment cat", objects=[CAT]),
        _record(image_path="/d/empty.jpg", objects=[]),
    ]
    target = tmp_path / "coco.json"
    export_coco(records, target)
    data = json.loads(target.read_text())
    assert [i["file_name"] for i in data["images"]] == ["a.jpg", "empty.jpg"]
    assert [a["category_id"] for a in data["annotations"]] == [1, 2]
    assert [c["name"] for c in data["categories"]] == ["dog", "cat"]


def test_coco_file_names_are_relative_to_the_common_folder(tmp_path: Path) -> None:
    records = [
        _record(image_path="/data/set/a/x.jpg"),
        _record(image_path="/data/set/b/x.jpg"),
    ]
    target = tmp_path / "coco.json"
    export_coco(records, target)
    data = json.loads(target.read_text())
    assert data["info"]["image_root"] == "/data/set"
    assert [i["file_name"] for i in data["images"]] == ["a/x.jpg", "b/x.jpg"]


def test_coco_of_nothing_is_an_empty_dataset(tmp_path: Path) -> None:
    target = tmp_path / "coco.json"
    export_coco([], target)
    data = json.loads(target.read_text())
    assert data["images"] == data["annotations"] == data["categories"] == []


# --- YOLO ----------------------------------------------------------------------------


def test_yolo_numbers_on_a_non_square_image(tmp_path: Path) -> None:
    out = tmp_path / "labels"
    summary = export_yolo([_record(objects=[CAT, DOG])], out)
    assert sorted(p.name for p in out.iterdir()) == ["classes.txt", "one.txt"]
    assert set(summary.written) == {out / "classes.txt", out / "one.txt"}
    assert (out / "classes.txt").read_text() == "cat\ndog\n"
    # cat: centre (60, 50) / (200, 100) = (0.3, 0.5); size (80, 80) / (200, 100) = (0.4, 0.8)
    # dog: centre (175, 25) -> (0.875, 0.25); size (50, 50) -> (0.25, 0.5)
    assert (out / "one.txt").read_text() == (
        "0 0.300000 0.500000 0.400000 0.800000\n1 0.875000 0.250000 0.250000 0.500000\n"
    )
    assert _temp_files(out) == []


def test_yolo_merges_prompts_of_one_image_and_writes_negatives(tmp_path: Path) -> None:
    records = [
        _record(prompt="detect cat", objects=[CAT]),
        _record(prompt="detect dog", objects=[DOG]),
        _record(image_path="/data/pets/none.jpg", objects=[]),
        _caption(Path("/data/pets/cap.jpg"), "a cat"),
    ]
    out = tmp_path / "labels"
    export_yolo(records, out)
    assert sorted(p.name for p in out.iterdir()) == ["classes.txt", "none.txt", "one.txt"]
    assert len((out / "one.txt").read_text().splitlines()) == 2
    assert (out / "none.txt").read_text() == ""


def test_yolo_same_stem_in_two_folders_gets_two_files(tmp_path: Path) -> None:
    records = [
        _record(image_path="/a/cat.jpg", objects=[CAT]),
        _record(image_path="/b/Cat.png", objects=[DOG]),
        _record(image_path="/c/classes.jpg", objects=[CAT]),
        _record(image_path="/c/unique.jpg", objects=[DOG]),
    ]
    out = tmp_path / "labels"
    export_yolo(records, out)
    names = sorted(p.name for p in out.iterdir())
    assert "unique.txt" in names and "classes.txt" in names
    assert (out / "classes.txt").read_text() == "cat\ndog\n"
    hashed = [n for n in names if n not in ("unique.txt", "classes.txt")]
    assert len(hashed) == 3
    assert {n.split("-")[0] for n in hashed} == {"cat", "Cat", "classes"}
    contents = sorted((out / n).read_text()[0] for n in hashed)
    assert contents == ["0", "0", "1"]


def test_yolo_skips_images_of_unknown_size(tmp_path: Path) -> None:
    out = tmp_path / "labels"
    summary = export_yolo([_record(image_width=0, image_height=0)], out)
    assert summary.skipped == [out / "one.txt"]
    assert not (out / "one.txt").exists()


def test_unique_stems_is_stable_and_only_renames_clashes() -> None:
    first = unique_stems(["/a/x.jpg", "/b/x.jpg", "/c/y.jpg"])
    again = unique_stems(["/c/y.jpg", "/b/x.jpg", "/a/x.jpg"])
    assert first == again
    assert first["/c/y.jpg"] == "y"
    assert first["/a/x.jpg"] != first["/b/x.jpg"]
    assert first["/a/x.jpg"].startswith("x-") and len(first["/a/x.jpg"]) == 2 + 8


# --- Captions beside images ----------------------------------------------------------


def test_captions_are_written_beside_their_images(tmp_path: Path) -> None:
    image = tmp_path / "photos" / "beach.jpg"
    image.parent.mkdir()
    asked: list[Path] = []

    def allow(path: Path) -> bool:
        asked.append(path)
        return True

    summary = export_captions_beside_images(
        [_caption(image, "<bos> a dog on a beach <eos><pad>")], allow
    )
    target = tmp_path / "photos" / "beach.txt"
    assert summary.written == [target] and summary.skipped == []
    assert target.read_text() == "a dog on a beach"
    assert asked == []  # nothing to overwrite, nothing asked
    assert _temp_files(image.parent) == []


def test_an_existing_caption_is_kept_when_the_user_says_no(tmp_path: Path) -> None:
    image = tmp_path / "beach.jpg"
    target = tmp_path / "beach.txt"
    target.write_text("my own caption")
    asked: list[Path] = []

    def refuse(path: Path) -> bool:
        asked.append(path)
        return False

    summary = export_captions_beside_images([_caption(image, "a dog")], refuse)
    assert asked == [target]
    assert summary.skipped == [target] and summary.written == []
    assert target.read_text() == "my own caption"


def test_an_existing_caption_is_replaced_when_the_user_says_yes(tmp_path: Path) -> None:
    image = tmp_path / "beach.jpg"
    target = tmp_path / "beach.txt"
    target.write_text("old")
    summary = export_captions_beside_images([_caption(image, "a dog")], lambda _: True)
    assert summary.written == [target]
    assert target.read_text() == "a dog"


def test_captions_use_the_newest_caption_and_ignore_other_tasks(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    records = [
        _caption(image, "old words", created="2025-01-01T00:00:00+00:00"),
        _caption(image, "new words", created="2025-06-01T00:00:00+00:00"),
        _record(image_path=str(tmp_path / "boxes.jpg")),
        _caption(tmp_path / "blank.jpg", "<eos>"),
    ]
    summary = export_captions_beside_images(records, lambda _: True)
    assert summary.written == [tmp_path / "a.txt"]
    assert (tmp_path / "a.txt").read_text() == "new words"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_captions_for_other_tasks_when_asked(tmp_path: Path) -> None:
    record = replace(_caption(tmp_path / "scan.png", "INVOICE 42<eos>"), task="ocr", prompt="ocr")
    assert export_captions_beside_images([record], lambda _: True).written == []
    summary = export_captions_beside_images([record], lambda _: True, tasks=("ocr",))
    assert summary.written == [tmp_path / "scan.txt"]


def test_two_images_with_one_stem_in_one_folder_keep_separate_captions(tmp_path: Path) -> None:
    records = [
        _caption(tmp_path / "cat.jpg", "a jpeg cat"),
        _caption(tmp_path / "cat.png", "a png cat"),
        _caption(tmp_path / "other" / "cat.jpg", "another cat"),
    ]
    (tmp_path / "other").mkdir()
    summary = export_captions_beside_images(records, lambda _: True)
    texts = sorted(path.read_text() for path in summary.written)
    assert texts == ["a jpeg cat", "a png cat", "another cat"]
    assert (tmp_path / "other" / "cat.txt").read_text() == "another cat"
    assert not (tmp_path / "cat.txt").exists()


# --- Failures ------------------------------------------------------------------------


def _raise(code: int) -> Callable[..., None]:
    def fail(*_: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


def test_a_full_disk_is_named_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous export\n")
    monkeypatch.setattr(os, "replace", _raise(errno.ENOSPC))
    with pytest.raises(ExportError, match="disk is full") as info:
        export_jsonl([_record()], target)
    assert str(target) in str(info.value)
    monkeypatch.undo()
    assert target.read_text() == "previous export\n"
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize(
    "export",
    [
        lambda records, folder: export_csv(records, folder / "out.csv"),
        lambda records, folder: export_coco(records, folder / "coco.json"),
        lambda records, folder: export_yolo(records, folder / "labels"),
        lambda records, folder: export_captions_beside_images(
            [_caption(folder / "a.jpg", "a cat")], lambda _: True
        ),
    ],
)
def test_every_exporter_maps_a_full_disk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    export: Callable[[list[HistoryRecord], Path], object],
) -> None:
    monkeypatch.setattr(os, "replace", _raise(errno.ENOSPC))
    with pytest.raises(ExportError, match="disk is full"):
        export([_record()], tmp_path)


def test_a_full_disk_while_writing_is_mapped_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    with pytest.raises(ExportError, match="disk is full"):
        export_csv([_record()], tmp_path / "out.csv")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_permission_denied_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", _raise(errno.EACCES))
    with pytest.raises(ExportError, match="not allowed to write"):
        export_coco([_record()], tmp_path / "coco.json")


def test_a_missing_folder_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="could not write"):
        export_jsonl([_record()], tmp_path / "no" / "such" / "out.jsonl")


def test_yolo_folder_that_cannot_be_made_is_an_export_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError):
        export_yolo([_record()], blocker / "labels")
