"""``palidesk score`` against hostile truth and prediction files (issue 18): a bad value
is refused with a sentence or counted in a note, never silently dropped or matched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_score import CAT_A, CAT_B, DOG_A, PERFECT, coco_truth, run_record, write_jsonl

from app.evaluation.score import score_files
from app.evaluation.truth import TruthError

ROOT = Path(__file__).resolve().parent.parent


def _coco(tmp_path: Path, change: Any) -> Path:
    """The test_score COCO truth with ``change(data)`` applied."""
    path = coco_truth(tmp_path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # allow_nan: NaN/Infinity written as JSON allows
    return path


def _score(tmp_path: Path, truth: Path, records: list[dict[str, Any]],
           task: str = "detect") -> dict[str, Any]:
    return score_files(task, truth, write_jsonl(tmp_path / "run.jsonl", records)).to_json()


# --- truth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_truth_box_that_is_not_finite_is_refused(tmp_path: Path, bad: float) -> None:
    truth = _coco(tmp_path, lambda d: d["annotations"][0]["bbox"].__setitem__(2, bad))
    with pytest.raises(TruthError, match=r"annotation 1's bbox .*finite numbers"):
        _score(tmp_path, truth, PERFECT)


def test_truth_box_with_negative_size_is_refused(tmp_path: Path) -> None:
    truth = _coco(tmp_path, lambda d: d["annotations"][1]["bbox"].__setitem__(3, -60.0))
    with pytest.raises(TruthError, match="annotation 2 has a negative width or height"):
        _score(tmp_path, truth, PERFECT)


def test_truth_annotation_for_unknown_category_is_refused(tmp_path: Path) -> None:
    truth = _coco(tmp_path, lambda d: d["annotations"][0].__setitem__("category_id", 7))
    with pytest.raises(TruthError, match="category_id 7, which no category has"):
        _score(tmp_path, truth, PERFECT)


def test_truth_annotation_for_unknown_image_is_refused(tmp_path: Path) -> None:
    truth = _coco(tmp_path, lambda d: d["annotations"][2].__setitem__("image_id", 9))
    with pytest.raises(TruthError, match="image_id 9, which no image has"):
        _score(tmp_path, truth, PERFECT)


def test_truth_with_duplicate_file_names_is_refused(tmp_path: Path) -> None:
    truth = _coco(tmp_path, lambda d: d["images"][1].__setitem__("file_name", "a.png"))
    with pytest.raises(TruthError, match=r"'a\.png' twice"):
        _score(tmp_path, truth, PERFECT)


def test_truth_with_infinite_image_size_is_a_sentence(tmp_path: Path) -> None:
    truth = _coco(tmp_path, lambda d: d["images"][0].__setitem__("width", float("inf")))
    with pytest.raises(TruthError, match="without a needed field"):
        _score(tmp_path, truth, PERFECT)


def test_truth_with_two_categories_of_one_name_is_refused(tmp_path: Path) -> None:
    truth = _coco(tmp_path, lambda d: d["categories"].append({"id": 3, "name": "Cat "}))
    with pytest.raises(TruthError, match=r"two categories 'Cat ' \(ids 1 and 3\)"):
        _score(tmp_path, truth, PERFECT)


def test_yolo_label_with_nan_is_refused(tmp_path: Path) -> None:
    from test_score import yolo_truth

    root = yolo_truth(tmp_path)
    (root / "labels" / "b.txt").write_text("0 0.5 0.5 nan 0.1\n")
    with pytest.raises(TruthError, match=r"b\.txt line 1 holds 'nan'"):
        _score(tmp_path, root, PERFECT)


def test_deeply_nested_truth_is_a_sentence(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TruthError, match="nested too deeply"):
        _score(tmp_path, truth, PERFECT)


def test_caption_truth_with_no_reference_is_refused(tmp_path: Path) -> None:
    truth = write_jsonl(tmp_path / "truth.jsonl", [{"image": "a.png", "text": []}])
    with pytest.raises(TruthError, match='line 1 has an empty "text" list'):
        _score(tmp_path, truth, [run_record("a.png", "caption", text="a cat")], "caption")


# --- predictions ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_predicted_box_that_is_not_finite_does_not_match(tmp_path: Path, bad: float) -> None:
    records = [run_record("a.png", "detect", [("cat", (bad, bad, bad, bad)),
                                               ("dog", (bad, 20.0, bad, 80.0))]),
               run_record("b.png", "detect", [("cat", (bad, bad, bad, bad))])]
    report = _score(tmp_path, coco_truth(tmp_path), records)
    assert report["metrics"]["mAP"] == 0.0  # was 1.0: NaN "matched" every box
    assert any("3 predicted objects had no usable box" in n for n in report["notes"])


@pytest.mark.parametrize("box", [None, [1.0, 2.0, 3.0], ["10", "10", "110", "60"],
                                 [110.0, 60.0, 10.0, 10.0]])
def test_predicted_object_without_a_usable_box_is_counted(tmp_path: Path, box: Any) -> None:
    records = [run_record("a.png", "detect", [("cat", CAT_A), ("dog", DOG_A)]),
               run_record("b.png", "detect", [("cat", CAT_B)])]
    records[0]["objects"].append({"label": "cat", "box": box})
    if box is None:
        del records[0]["objects"][-1]["box"]
    report = _score(tmp_path, coco_truth(tmp_path), records)
    assert "1 predicted object had no usable box (4 finite numbers x0 <= x1, y0 <= y1): " \
           "not scored" in report["notes"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("tokens", ["x"], '"tokens" must be a list of whole numbers'),
    ("image_size", [5], '"image_size" is \\[5\\], not \\[width, height\\]'),
    ("objects", "cat", '"objects" must be a list of objects'),
    ("error", {"why": 1}, '"error" must be a sentence'),
    ("text", None, '"text" is None, not a string'),
])
def test_prediction_field_of_the_wrong_shape_is_a_sentence(
        tmp_path: Path, field: str, value: Any, message: str) -> None:
    records = [run_record("a.png", "detect", [("cat", CAT_A)])]
    records[0][field] = value
    with pytest.raises(TruthError, match=f"run.jsonl line 1: {message}"):
        _score(tmp_path, coco_truth(tmp_path), records)


def test_prediction_score_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    records = [run_record("a.png", "detect", [("cat", CAT_A)])]
    records[0]["objects"][0]["score"] = "high"
    with pytest.raises(TruthError, match="line 1: an object's \"score\" is 'high'"):
        _score(tmp_path, coco_truth(tmp_path), records)


def test_odd_mask_in_a_prediction_falls_back_to_its_box(tmp_path: Path) -> None:
    from test_score import SIZES

    records = [run_record("a.png", "segment", [("cat", CAT_A)])]
    records[0]["objects"][0]["mask"] = {"size": ["tall", "wide"], "counts": 5}
    truth = coco_truth(tmp_path, masks="polygon")
    assert SIZES  # the truth's images are the ones the records name
    report = _score(tmp_path, truth, records, "segment")
    assert any("1 object had no decoded mask" in n for n in report["notes"])


# --- through the command -------------------------------------------------------------------


def palidesk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_deeply_nested_predictions_through_the_cli(tmp_path: Path) -> None:
    predictions = tmp_path / "run.jsonl"
    predictions.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    done = palidesk("score", "--task", "detect", "--truth", coco_truth(tmp_path),
                    "--predictions", predictions)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "run.jsonl line 1 is nested too deeply to be read as JSON" in done.stderr


def test_a_folder_given_as_predictions_is_called_a_folder(tmp_path: Path) -> None:
    done = palidesk("score", "--task", "detect", "--truth", coco_truth(tmp_path),
                    "--predictions", tmp_path)
    assert done.returncode == 1
    assert f"The predictions file {tmp_path} is a folder" in done.stderr
    assert "does not exist" not in done.stderr


def test_a_folder_given_as_text_truth_is_called_a_folder(tmp_path: Path) -> None:
    predictions = write_jsonl(tmp_path / "run.jsonl", [run_record("a.png", "ocr")])
    done = palidesk("score", "--task", "ocr", "--truth", tmp_path, "--predictions",
                    predictions)
    assert done.returncode == 1
    assert f"The truth file {tmp_path} is a folder" in done.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
@pytest.mark.parametrize("which", ["--truth", "--predictions"])
def test_a_pipe_is_refused_not_read_forever(tmp_path: Path, which: str) -> None:
    files = {"--truth": coco_truth(tmp_path),
             "--predictions": write_jsonl(tmp_path / "run.jsonl", PERFECT)}
    fifo = tmp_path / "named-pipe.json"  # like /dev/zero: reading it would never end
    os.mkfifo(fifo)
    files[which] = fifo
    done = palidesk("score", "--task", "detect", "--truth", files["--truth"],
                    "--predictions", files["--predictions"])
    assert done.returncode == 1
    assert f"{fifo} is not a regular file" in done.stderr


@pytest.mark.parametrize(("segmentation", "message"), [
    ("abc", "neither polygons nor an RLE mask"),
    ([[1, 2, 3]], "not polygons"),
    ([["a", "b", "c", "d", "e", "f"]], "not polygons"),
    ([[float("nan")] * 6], "not polygons"),
    ({"size": [1], "counts": "x"}, r"a mask of size \[1\]; its image 'a.png' is \[100, 200\]"),
    ({"size": [100, 200], "counts": [1, 2]}, "RLE counts that are not whole numbers"),
])
def test_truth_mask_pycocotools_cannot_read_is_a_sentence(tmp_path: Path, segmentation: Any,
                                                          message: str) -> None:
    truth = coco_truth(tmp_path, masks="polygon")
    data = json.loads(truth.read_text())
    data["annotations"][0]["segmentation"] = segmentation
    truth.write_text(json.dumps(data))
    records = [run_record("a.png", "segment", [("cat", CAT_A), ("dog", DOG_A)]),
               run_record("b.png", "segment", [("cat", CAT_B)])]
    with pytest.raises(TruthError, match=f"annotation 1 has .*{message}"):
        _score(tmp_path, truth, records, "segment")


@pytest.mark.parametrize("counts", ["zzzz~~~~", [1e9], [-5, 20005]])
def test_predicted_mask_that_is_no_mask_is_scored_as_its_box(tmp_path: Path,
                                                             counts: Any) -> None:
    # Was: garbage text decoded into some mask and scored (mAP 0.63 instead of 1.0), and
    # [1e9] a ValueError from pycocotools.
    records = [run_record("a.png", "segment", [("cat", CAT_A), ("dog", DOG_A)],
                          masks={0: {"size": [100, 200], "counts": counts}}),
               run_record("b.png", "segment", [("cat", CAT_B)])]
    report = _score(tmp_path, coco_truth(tmp_path, masks="polygon"), records, "segment")
    assert report["metrics"]["mAP"] == 1.0  # each box equals its truth polygon
    assert "3 objects had no decoded mask; scored as a box instead" in report["notes"]
