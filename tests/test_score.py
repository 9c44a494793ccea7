"""``palidesk score``: hand-made truth and predictions whose metrics are known."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from app.evaluation.predictions import load_predictions
from app.evaluation.score import format_table, score_files
from app.evaluation.text_metrics import anls, exact_match, normalize_answer
from app.evaluation.truth import TruthError

ROOT = Path(__file__).resolve().parent.parent

# Image a.png (200 x 100) holds a cat and a dog, b.png (64 x 64) a small cat.
CAT_A = (10.0, 10.0, 110.0, 60.0)  # x_min, y_min, x_max, y_max
DOG_A = (120.0, 20.0, 180.0, 80.0)
CAT_B = (20.0, 20.0, 30.0, 30.0)  # 10 x 10: one pixel off is IoU 0.82
SIZES = {"a.png": (200, 100), "b.png": (64, 64)}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def run_record(image: str, task: str, objects: list[tuple[str, tuple]] = (), text: str = "",
               masks: dict[int, dict] | None = None) -> dict[str, Any]:
    """A line as ``palidesk run --json`` writes it."""
    objs = []
    for index, (label, box) in enumerate(objects):
        obj: dict[str, Any] = {"label": label, "box": list(box), "loc": [0, 0, 0, 0],
                               "seg_codes": None}
        if masks is not None:
            obj["mask"] = masks.get(index)
        objs.append(obj)
    size = SIZES.get(Path(image).name, (100, 100))
    return {"image": image, "task": task, "prompt": "p", "tokens": [1, 2], "text": text + "<eos>",
            "objects": objs, "stop_reason": "eos", "image_size": list(size), "timings": {}}


def rect_polygon(box: tuple) -> list[float]:
    x0, y0, x1, y1 = box
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def coco_truth(tmp_path: Path, masks: str | None = None) -> Path:
    """COCO JSON; ``masks`` = "polygon" or "rle" adds a segmentation equal to the box."""
    annotations = []
    for image_id, category_id, box in ((1, 1, CAT_A), (1, 2, DOG_A), (2, 1, CAT_B)):
        x0, y0, x1, y1 = box
        ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": image_id,
                               "category_id": category_id, "bbox": [x0, y0, x1 - x0, y1 - y0],
                               "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
        if masks == "polygon":
            ann["segmentation"] = [rect_polygon(box)]
        elif masks == "rle":
            w, h = SIZES["a.png" if image_id == 1 else "b.png"]
            rle = box_rle(box, w, h)
            ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"]}
        annotations.append(ann)
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100},
                       {"id": 2, "file_name": "b.png", "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": annotations}
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(data))
    return path


def box_rle(box: tuple, width: int, height: int) -> dict[str, Any]:
    """A compressed-RLE mask (counts as text, as pycocotools writes JSON) filling ``box``."""
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(mask)
    return {"size": [height, width], "counts": rle["counts"].decode()}


def yolo_truth(tmp_path: Path, polygons: bool = False, yaml_names: bool = False) -> Path:
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name, (w, h) in SIZES.items():
        Image.new("RGB", (w, h)).save(root / "images" / name)
    lines = {"a.png": [(0, CAT_A), (1, DOG_A)], "b.png": [(0, CAT_B)]}
    for name, objects in lines.items():
        w, h = SIZES[name]
        rows = []
        for cls, (x0, y0, x1, y1) in objects:
            if polygons:
                points = rect_polygon((x0, y0, x1, y1))
                rows.append(f"{cls} " + " ".join(
                    f"{v / (w if i % 2 == 0 else h):.6f}" for i, v in enumerate(points)))
            else:
                rows.append(f"{cls} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                            f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
        (root / "labels" / name).with_suffix(".txt").write_text("\n".join(rows) + "\n")
    if yaml_names:
        (root / "data.yaml").write_text("path: .\nnames:\n  0: cat\n  1: dog\n")
    else:
        (root / "classes.txt").write_text("cat\ndog\n")
    return root


def score_detect(tmp_path: Path, truth: Path, records: list[dict[str, Any]],
                 task: str = "detect") -> dict[str, Any]:
    predictions = write_jsonl(tmp_path / "run.jsonl", records)
    return score_files(task, truth, predictions).to_json()


PERFECT = [run_record("/photos/a.png", "detect", [("cat", CAT_A), ("dog", DOG_A)]),
           run_record("/photos/b.png", "detect", [("cat", CAT_B)])]


# --- detect --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["coco", "yolo-classes", "yolo-yaml"])
def test_detect_perfect_in_every_format(tmp_path: Path, form: str) -> None:
    truth = (coco_truth(tmp_path) if form == "coco"
             else yolo_truth(tmp_path, yaml_names=form == "yolo-yaml"))
    report = score_detect(tmp_path, truth, PERFECT)
    assert report["task"] == "detect" and report["images"] == 2
    assert report["metrics"] == {"mAP": 1.0, "AP50": 1.0, "AP75": 1.0, "recall": 1.0}


@pytest.mark.parametrize("form", ["coco", "yolo"])
def test_detect_empty_answers_score_zero(tmp_path: Path, form: str) -> None:
    truth = coco_truth(tmp_path) if form == "coco" else yolo_truth(tmp_path)
    records = [run_record("a.png", "detect"), run_record("b.png", "detect")]
    report = score_detect(tmp_path, truth, records)
    assert report["metrics"] == {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0, "recall": 0.0}


@pytest.mark.parametrize("form", ["coco", "yolo"])
def test_detect_half_right(tmp_path: Path, form: str) -> None:
    # Only image a: the cat is found, the dog is not. AP is per category, then averaged:
    # cat 1.0, dog 0.0.
    truth = coco_truth(tmp_path) if form == "coco" else yolo_truth(tmp_path)
    report = score_detect(tmp_path, truth, [run_record("a.png", "detect", [("cat", CAT_A)])])
    assert report["images"] == 1
    assert report["not_predicted"] == ["b.png"]
    assert report["metrics"] == {"mAP": 0.5, "AP50": 0.5, "AP75": 0.5, "recall": 0.5}


def test_detect_wrong_labels_score_zero(tmp_path: Path) -> None:
    records = [run_record("a.png", "detect", [("dog", CAT_A), ("cat", DOG_A)])]
    report = score_detect(tmp_path, coco_truth(tmp_path), records)
    assert report["metrics"] == {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0, "recall": 0.0}


def test_detect_boxes_one_pixel_off(tmp_path: Path) -> None:
    # One pixel to the right: the big boxes stay above IoU 0.95; the 10 x 10 cat has IoU
    # 90 / 110 = 0.82 and matches at thresholds 0.50 .. 0.80 (7 of 10), not at 0.85+.
    def shift(box: tuple) -> tuple:
        x0, y0, x1, y1 = box
        return (x0 + 1, y0, x1 + 1, y1)

    records = [run_record("b.png", "detect", [("cat", shift(CAT_B))])]
    report = score_detect(tmp_path, coco_truth(tmp_path), records)
    assert report["metrics"] == {"mAP": 0.7, "AP50": 1.0, "AP75": 1.0, "recall": 0.7}
    records = [run_record("a.png", "detect", [("cat", shift(CAT_A)), ("dog", shift(DOG_A))])]
    report = score_detect(tmp_path, coco_truth(tmp_path), records)
    assert report["metrics"]["mAP"] == 1.0
    # One pixel off on both axes: IoU 81 / 119 = 0.68, 4 thresholds of 10.
    diagonal = [run_record("b.png", "detect", [("cat", tuple(v + 1 for v in CAT_B))])]
    assert score_detect(tmp_path, coco_truth(tmp_path), diagonal)["metrics"]["mAP"] == 0.4


def test_labels_match_case_insensitively_and_unknown_ones_are_reported(tmp_path: Path) -> None:
    records = [run_record("a.png", "detect", [("Cat ", CAT_A), ("DOG", DOG_A),
                                             ("zebra", (0, 0, 5, 5))])]
    report = score_detect(tmp_path, coco_truth(tmp_path), records)
    assert report["metrics"]["mAP"] == 1.0
    assert any("'zebra' x1" in note for note in report["notes"])


def test_error_records_count_as_empty_answers(tmp_path: Path) -> None:
    records = [PERFECT[0], {"image": "b.png", "error": "b.png cannot be read."}]
    report = score_detect(tmp_path, coco_truth(tmp_path), records)
    assert report["failed"] == ["b.png"]
    assert report["metrics"]["recall"] == pytest.approx(0.75)  # cat 1 of 2, dog 1 of 1


# --- segment -------------------------------------------------------------------------------


@pytest.mark.parametrize("masks", ["polygon", "rle"])
def test_segment_perfect_masks(tmp_path: Path, masks: str) -> None:
    truth = coco_truth(tmp_path, masks=masks)
    records = [
        run_record("a.png", "segment", [("cat", CAT_A), ("dog", DOG_A)],
                   masks={0: box_rle(CAT_A, 200, 100), 1: box_rle(DOG_A, 200, 100)}),
        run_record("b.png", "segment", [("cat", CAT_B)], masks={0: box_rle(CAT_B, 64, 64)}),
    ]
    report = score_detect(tmp_path, truth, records, "segment")
    assert report["metrics"] == {"mAP": 1.0, "AP50": 1.0, "AP75": 1.0, "recall": 1.0,
                                 "mIoU": 1.0}
    assert report["notes"] == []


def test_segment_yolo_polygons_and_missing_masks_fall_back_to_boxes(tmp_path: Path) -> None:
    truth = yolo_truth(tmp_path, polygons=True)
    # No "mask" key at all (a run from before masks were decoded) and "mask": null.
    records = [run_record("a.png", "segment", [("cat", CAT_A), ("dog", DOG_A)]),
               run_record("b.png", "segment", [("cat", CAT_B)], masks={0: None})]
    report = score_detect(tmp_path, truth, records, "segment")
    assert report["metrics"]["mAP"] == 1.0 and report["metrics"]["mIoU"] == 1.0
    assert any("3 objects had no decoded mask" in note for note in report["notes"])


def test_segment_half_mask(tmp_path: Path) -> None:
    # The predicted cat mask covers the left half of the truth's: IoU exactly 0.5, so it
    # matches at threshold 0.50 only (AP50 1, mAP 0.1); mIoU over (b, cat) is 0.5.
    truth = coco_truth(tmp_path, masks="rle")
    half = (20.0, 20.0, 25.0, 30.0)
    records = [run_record("b.png", "segment", [("cat", CAT_B)], masks={0: box_rle(half, 64, 64)})]
    report = score_detect(tmp_path, truth, records, "segment")
    assert report["metrics"]["AP50"] == 1.0
    assert report["metrics"]["mAP"] == pytest.approx(0.1)
    assert report["metrics"]["mIoU"] == 0.5


def test_segment_empty_and_wrong_label(tmp_path: Path) -> None:
    truth = coco_truth(tmp_path, masks="polygon")
    report = score_detect(tmp_path, truth, [run_record("b.png", "segment")], "segment")
    assert report["metrics"]["mAP"] == 0.0 and report["metrics"]["mIoU"] == 0.0
    wrong = [run_record("b.png", "segment", [("dog", CAT_B)], masks={0: box_rle(CAT_B, 64, 64)})]
    report = score_detect(tmp_path, truth, wrong, "segment")
    assert report["metrics"]["mAP"] == 0.0 and report["metrics"]["mIoU"] == 0.0


def test_segment_needs_masks_in_the_truth(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="no masks"):
        score_detect(tmp_path, coco_truth(tmp_path), PERFECT, "segment")


# --- text tasks ----------------------------------------------------------------------------


def text_truth(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    return write_jsonl(tmp_path / "truth.jsonl", rows)


def score_text(tmp_path: Path, task: str, truth_rows: list[dict], answers: dict[str, str]):
    truth = text_truth(tmp_path, truth_rows)
    records = [run_record(f"/data/{name}", task, text=text) for name, text in answers.items()]
    return score_files(task, truth, write_jsonl(tmp_path / "run.jsonl", records)).to_json()


OCR_TRUTH = [{"image": "a.png", "text": "hello world"}, {"image": "b.png", "text": "total 42"}]


def test_ocr_perfect_empty_and_half(tmp_path: Path) -> None:
    perfect = score_text(tmp_path, "ocr", OCR_TRUTH, {"a.png": "hello  world", "b.png": "total 42"})
    assert perfect["metrics"] == {"cer": 0.0, "wer": 0.0}
    empty = score_text(tmp_path, "ocr", OCR_TRUTH, {"a.png": "", "b.png": ""})
    assert empty["metrics"] == {"cer": 1.0, "wer": 1.0}
    # One word of two wrong in a: "world" -> "there" is 5 characters of 11.
    half = score_text(tmp_path, "ocr", OCR_TRUTH[:1], {"a.png": "hello there"})
    assert half["metrics"] == {"cer": round(5 / 11, 4), "wer": 0.5}


ASK_TRUTH = [{"image": "a.png", "answers": ["two", "2"]},
             {"image": "b.png", "answers": ["the red box"]}]


def test_ask_exact_match_and_anls(tmp_path: Path) -> None:
    perfect = score_text(tmp_path, "ask", ASK_TRUTH, {"a.png": "Two", "b.png": "The red box"})
    assert perfect["metrics"] == {"exact_match": 1.0, "anls": 1.0}
    # Normalisation forgives punctuation and articles; ANLS counts them as edits.
    loose = score_text(tmp_path, "ask", ASK_TRUTH[:1], {"a.png": "Two."})
    assert loose["metrics"] == {"exact_match": 1.0, "anls": 0.75}
    empty = score_text(tmp_path, "ask", ASK_TRUTH, {"a.png": "", "b.png": ""})
    assert empty["metrics"] == {"exact_match": 0.0, "anls": 0.0}
    half = score_text(tmp_path, "ask", ASK_TRUTH, {"a.png": "2", "b.png": "blue"})
    assert half["metrics"]["exact_match"] == 0.5
    assert half["metrics"]["anls"] == 0.5


def test_answer_normalisation_and_anls_by_hand() -> None:
    assert normalize_answer("The Two dogs!") == "2 dogs"
    assert normalize_answer("1,000") == "1000"
    assert normalize_answer("3.5") == "3.5"
    assert normalize_answer("It's dont") == "it's don't"
    assert exact_match("a cat", ["Cat"]) == 1.0
    assert anls("hello wrld", ["hello world"]) == pytest.approx(1 - 1 / 11)
    assert anls("abc", ["xyz"]) == 0.0  # distance 1.0 >= 0.5


CAPTION_TRUTH = [{"image": "a.png", "text": ["a cat sitting on a red mat", "a cat on a mat"]},
                 {"image": "b.png", "text": "two dogs playing in the park today"}]


def test_caption_bleu_and_chrf(tmp_path: Path) -> None:
    perfect = score_text(tmp_path, "caption", CAPTION_TRUTH, {
        "a.png": "a cat sitting on a red mat", "b.png": "two dogs playing in the park today"})
    assert perfect["metrics"] == {"bleu4": 100.0, "chrf": 100.0}
    wrong = score_text(tmp_path, "caption", CAPTION_TRUTH, {"a.png": "zzz", "b.png": "qqq"})
    assert wrong["metrics"]["bleu4"] == 0.0 and wrong["metrics"]["chrf"] < 5
    half = score_text(tmp_path, "caption", CAPTION_TRUTH, {
        "a.png": "a cat sitting on a red mat", "b.png": "qqq"})
    assert 0 < half["metrics"]["bleu4"] < 100 and 0 < half["metrics"]["chrf"] < 100


# --- files, errors and the command ---------------------------------------------------------


def test_longest_path_tail_wins(tmp_path: Path) -> None:
    rows = [{"image": "val/a.png", "text": "right"}, {"image": "train/a.png", "text": "other"}]
    report = score_text(tmp_path, "ocr", rows, {})
    records = [run_record("/x/val/a.png", "ocr", text="right")]
    report = score_files("ocr", tmp_path / "truth.jsonl",
                         write_jsonl(tmp_path / "run.jsonl", records)).to_json()
    assert report["images"] == 1 and report["metrics"]["cer"] == 0.0
    assert report["not_predicted"] == ["train/a.png"]


def test_later_record_replaces_earlier(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "run.jsonl", [run_record("a.png", "ocr", text="one"),
                                               run_record("a.png", "ocr", text="two")])
    assert [p.answer for p in load_predictions(path)] == ["two"]


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not valid JSON"),
    ('{"images": []}', "needs \"images\" and \"categories\""),
    ('{"images": [{"id": 1}], "categories": []}', "without a needed field"),
])
def test_bad_coco_truth_says_why(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "truth.json").write_text(content)
    with pytest.raises(TruthError, match=message):
        score_detect(tmp_path, tmp_path / "truth.json", PERFECT)


def test_bad_yolo_label_says_where(tmp_path: Path) -> None:
    root = yolo_truth(tmp_path)
    (root / "labels" / "a.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(TruthError, match=r"a.txt line 1 names class 7\.0, but there are 2"):
        score_detect(tmp_path, root, PERFECT)


def palidesk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_cli_json_and_table(tmp_path: Path) -> None:
    truth = coco_truth(tmp_path)
    predictions = write_jsonl(tmp_path / "run.jsonl", PERFECT[:1])
    done = palidesk("score", "--task", "detect", "--truth", truth, "--predictions",
                    predictions, "--json")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    record = json.loads(line)
    assert (record["task"], record["images"]) == ("detect", 1)
    assert record["metrics"]["AP50"] == 1.0
    done = palidesk("score", "--task", "detect", "--truth", truth, "--predictions", predictions)
    assert done.returncode == 0
    assert "mAP" in done.stdout and "higher is better" in done.stdout
    assert "1 labelled image had no prediction" in done.stdout


def test_cli_missing_file_is_a_plain_error(tmp_path: Path) -> None:
    done = palidesk("score", "--task", "ocr", "--truth", tmp_path / "nope.jsonl",
                    "--predictions", tmp_path / "run.jsonl")
    assert done.returncode == 1
    assert done.stderr.startswith("error: The truth file") and "Traceback" not in done.stderr


def test_table_shows_missing_metrics_as_na() -> None:
    from app.evaluation.score import ScoreReport

    text = format_table(ScoreReport("ask", 0, {"exact_match": None, "anls": None}))
    assert "n/a" in text


def test_answers_to_another_task_are_pointed_out(tmp_path: Path) -> None:
    records = [run_record("a.png", "caption", text="a cat")]
    report = score_detect(tmp_path, coco_truth(tmp_path), records)
    assert report["notes"][0] == (
        "some predictions are answers to another task (caption), not detect")
