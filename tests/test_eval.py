"""``palidesk eval``: agreement between quantizations, measured figures, the report."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.evaluation.agreement import agreement, box_iou, boxes_agree
from app.evaluation.predictions import Prediction
from app.models.measured_speed import (
    QuantSpeed,
    describe_speed,
    read_speeds,
    record_speed,
    speeds_here,
)
from conftest import IMAGES

ROOT = Path(__file__).resolve().parent.parent


def obj(label: str, box: tuple) -> dict:
    return {"label": label, "box": list(box)}


def answer(image: str, tokens: list[int], objects: list[dict] = ()) -> Prediction:
    return Prediction(image, "", list(objects), tokens, (100, 100))


# --- agreement -----------------------------------------------------------------------------


def test_box_iou_by_hand() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_boxes_agree_needs_label_iou_and_count() -> None:
    a = [obj("cat", (0, 0, 100, 100)), obj("dog", (200, 0, 300, 100))]
    # Order does not matter; one pixel on a 100 px box is IoU 0.99.
    assert boxes_agree(a, [obj("dog", (200, 0, 300, 100)), obj("Cat", (1, 0, 101, 100))])
    assert not boxes_agree(a, [obj("cat", (0, 0, 100, 100))])  # one missing
    assert not boxes_agree(a, [obj("dog", (0, 0, 100, 100)), obj("cat", (200, 0, 300, 100))])
    # IoU 0.85 (15 px off) is below 0.9.
    assert not boxes_agree(a[:1], [obj("cat", (0, 0, 100, 85))])
    assert boxes_agree([], [])


def test_agreement_shares() -> None:
    ref = {"a": answer("a", [1, 2, 3], [obj("cat", (0, 0, 10, 10))]),
           "b": answer("b", [4, 5], [obj("cat", (0, 0, 10, 10))]),
           "c": answer("c", [6])}
    other = {"a": answer("a", [1, 2, 3], [obj("cat", (0, 0, 10, 10))]),
             "b": answer("b", [4, 9], [obj("cat", (0, 0, 10, 10))])}  # c not finished
    result = agreement("F16", ref, other, spatial=True)
    assert (result.images, result.same_tokens, result.same_boxes) == (2, 1, 2)
    assert (result.token_share, result.box_share, result.share) == (0.5, 1.0, 1.0)
    text = agreement("F16", ref, other, spatial=False)
    assert text.same_boxes is None and text.share == 0.5


# --- measured figures ----------------------------------------------------------------------


def test_speed_file_round_trip_and_sentence(tmp_path: Path) -> None:
    record_speed(tmp_path, "q4_k_m", QuantSpeed(decode_tokens_per_s=14.2, first_token_s=4.21,
                                                agreement={"reference": "F16", "share": 0.97}))
    record_speed(tmp_path, "Q8_0", QuantSpeed(decode_tokens_per_s=8.0))
    speeds = read_speeds(tmp_path)
    assert set(speeds) == {"Q4_K_M", "Q8_0"}
    assert describe_speed(speeds["Q4_K_M"]) == (
        "14 tok/s, first token 4.2 s here · agrees 97 % with F16 on your images")
    # A later speed test keeps the agreement measured by eval.
    record_speed(tmp_path, "Q4_K_M", QuantSpeed(decode_tokens_per_s=15.0, first_token_s=4.0))
    assert read_speeds(tmp_path)["Q4_K_M"].agreement == {"reference": "F16", "share": 0.97}


def test_figures_from_another_machine_are_not_shown_as_here(tmp_path: Path) -> None:
    record_speed(tmp_path, "F16", QuantSpeed(decode_tokens_per_s=3.0, machine="elsewhere"))
    assert "F16" in read_speeds(tmp_path) and speeds_here(tmp_path) == {}


def test_damaged_speed_file_means_not_measured(tmp_path: Path) -> None:
    (tmp_path / "speed.json").write_text("{not json")
    assert read_speeds(tmp_path) == {}


# --- end to end on the tiny model ----------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def model_folder(converted, tmp_path: Path) -> Path:
    """A private copy: eval writes speed.json beside the manifest."""
    folder = tmp_path / "tiny"
    shutil.copytree(converted("pg2-tiny-224"), folder)
    return folder


def coco_truth(tmp_path: Path) -> Path:
    images = [("shapes_320x240.png", 320, 240), ("noise_97x150.png", 97, 150),
              ("strokes_500x500.png", 500, 500)]
    data = {"images": [{"id": i, "file_name": n, "width": w, "height": h}
                       for i, (n, w, h) in enumerate(images, 1)],
            "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "rectangle"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "bbox": [180, 60, 80, 80]},
                            {"id": 2, "image_id": 1, "category_id": 2,
                             "bbox": [30, 40, 100, 70]}]}
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(data))
    return path


def test_eval_end_to_end_on_the_tiny_model(model_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "eval", "--model", model_folder,
         "--quant", "F16,Q8_0", "--reference", "F16", "--task", "detect",
         "--truth", coco_truth(tmp_path), "--images", IMAGES, "--out", out,
         "--max-tokens", "24", "--threads", "1"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "F16" in done.stdout and "Q8_0" in done.stdout

    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "detect" and report["images"] == 3
    assert report["reference"] == "F16" and not report["interrupted"]
    assert list(report["quants"]) == ["F16", "Q8_0"]
    for _quant, entry in report["quants"].items():
        lines = (out / entry["predictions"]).read_text().splitlines()
        assert len(lines) == 3 and entry["complete"]
        assert {json.loads(line)["task"] for line in lines} == {"detect"}
        assert set(entry["metrics"]) == {"mAP", "AP50", "AP75", "recall"}
        speed = entry["speed"]
        assert speed["load_s"] > 0 and speed["first_token_s"] > 0
        assert speed["decode_tokens_per_s"] > 0 and speed["peak_rss_bytes"] > 50e6
        assert speed["first_token_cached_s"] > 0
        assert entry["agreement"]["images"] == 3
    assert report["quants"]["F16"]["agreement"]["share"] == 1.0  # itself
    q8 = report["quants"]["Q8_0"]["agreement"]
    assert q8["same_tokens"] == sum(
        json.loads(a)["tokens"] == json.loads(b)["tokens"]
        for a, b in zip((out / "predictions-F16.jsonl").read_text().splitlines(),
                        (out / "predictions-Q8_0.jsonl").read_text().splitlines(), strict=True))

    # The figures are kept with the model, with Q8_0's agreement with F16.
    speeds = read_speeds(model_folder)
    assert set(speeds) == {"F16", "Q8_0"}
    assert speeds["Q8_0"].agreement["reference"] == "F16"

    page = _Page()
    page.feed((out / "report.html").read_text())
    page.close()
    assert page.tags.count("table") >= 3
    charts = [src for src in page.images if src.startswith("data:image/png;base64,")]
    assert len(charts) >= 5  # 4 metrics + agreement (+ speed)
    assert base64.b64decode(charts[0].split(",", 1)[1]).startswith(b"\x89PNG")
    assert "Speed on this machine" in "".join(page.text)


def test_cancel_keeps_what_is_done(model_folder: Path, tmp_path: Path) -> None:
    from app.evaluation.eval_images import collect_images
    from app.evaluation.eval_run import EvalPlan, plan_quants, run_eval
    from app.model_files.model_folder import ModelFolder
    from app.progress import CancelFlag

    quants, reference = plan_quants(ModelFolder(model_folder), ["Q8_0"], "F16")
    assert (quants, reference) == (["F16", "Q8_0"], "F16")
    images = collect_images("caption", None, None, IMAGES)
    plan = EvalPlan(model_folder, "caption", quants, reference, images, tmp_path / "out",
                    max_new_tokens=8, threads=1)
    cancel = CancelFlag()

    def progress(event) -> None:
        if event.done == 1:
            cancel.cancel()  # as Ctrl+C does, after the first image

    report = run_eval(plan, progress, cancel)
    assert report["interrupted"]
    assert list(report["quants"]) == ["F16"]
    assert report["quants"]["F16"]["images_done"] == 1
    assert not report["quants"]["F16"]["complete"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["interrupted"]
    assert len((tmp_path / "out" / "predictions-F16.jsonl").read_text().splitlines()) == 1


def test_missing_quantization_is_a_plain_error(model_folder: Path) -> None:
    from app.errors import ModelFolderError
    from app.evaluation.eval_run import plan_quants
    from app.model_files.model_folder import ModelFolder

    with pytest.raises(ModelFolderError, match="has no Q2_K text file"):
        plan_quants(ModelFolder(model_folder), ["Q2_K"])
    quants, reference = plan_quants(ModelFolder(model_folder), ["q8_0"])
    assert reference == "F32" and quants == ["F32", "Q8_0"]  # the best installed is added


def test_charts_without_matplotlib_are_svg(monkeypatch: pytest.MonkeyPatch) -> None:
    # The packaged app leaves matplotlib out: the report still has its charts.
    import builtins

    from app.evaluation import report_html

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    chart = report_html._bar_chart("mAP", {"F16": 0.5, "Q8_0": 0.25, "Q4_K_M": None})
    assert chart.startswith("<svg") and chart.endswith("</svg>")
    assert ">F16<" in chart and ">Q8_0<" in chart and "Q4_K_M" not in chart
    page = _Page()
    page.feed(chart)
    assert page.tags.count("rect") == 2
