"""``palidesk eval`` against bad options and outputs (issue 18): refused before any work,
in a sentence, and a log gets plain progress lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IMAGES

ROOT = Path(__file__).resolve().parent.parent
TRUTH = ROOT / "docs" / "examples" / "shapes-coco.json"


def palidesk(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def model_folder(converted, tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(converted("pg2-tiny-224"), folder)
    return folder


def _eval(model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return palidesk("eval", "--model", model, "--task", "detect", "--truth", TRUTH,
                    "--images", IMAGES, "--out", out, "--max-tokens", "4", "--threads", "2",
                    *extra)


def test_out_that_is_a_file_is_refused_before_the_work(model_folder: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    out.write_text("keep me\n")
    done = _eval(model_folder, out)
    assert done.returncode == 1
    assert f"--out {out} is a file; give a folder" in done.stderr
    assert "images x" not in done.stderr  # nothing was run
    assert out.read_text() == "keep me\n"


def test_out_that_holds_a_report_is_refused_before_the_work(model_folder: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "report.json").write_text('{"earlier": true}')
    done = _eval(model_folder, out)
    assert done.returncode == 1
    assert "already holds an evaluation (report.json)" in done.stderr
    assert "images x" not in done.stderr
    assert json.loads((out / "report.json").read_text()) == {"earlier": True}


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("--max-tokens", "1000000000", "a whole number from 1 to"),
    ("--max-tokens", "0", "a whole number from 1 to"),
    ("--limit", "0", "a whole number from 1 to"),
    ("--limit", "-3", "a whole number from 1 to"),
    ("--threads", "0", "a whole number from 1 to 512"),
    ("--gpu-layers", "-7", "(-1 = all)"),
])
def test_numbers_out_of_range_are_refused(tmp_path: Path, option: str, value: str,
                                          allowed: str) -> None:
    done = palidesk("eval", "--model", tmp_path, "--task", "detect", "--out",
                    tmp_path / "out", option, value, timeout=60)
    assert done.returncode == 2
    assert f"argument {option}" in done.stderr and allowed in done.stderr
    assert not (tmp_path / "out").exists()


def test_progress_in_a_log_has_no_carriage_returns(model_folder: Path, tmp_path: Path) -> None:
    done = _eval(model_folder, tmp_path / "out", "--limit", "1", "--quant", "F16",
                 "--reference", "F16")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("1 image x F16 (reference F16)")  # not "1 images"
    assert "\r" not in done.stderr
    assert "F16: 1/1 (100%)" in done.stderr  # the plain line a log gets
    assert (tmp_path / "out" / "report.json").exists()


def test_the_command_has_a_description() -> None:
    done = palidesk("eval", "--help", timeout=60)
    assert "report.json, report.html" in done.stdout


def test_a_quantization_that_is_no_type_suggests_no_quantize(model_folder: Path,
                                                             tmp_path: Path) -> None:
    done = _eval(model_folder, tmp_path / "out", "--quant", "../../x")
    assert done.returncode == 1
    assert "'../../X' is not a quantization type" in done.stderr
    assert "quantize" not in done.stderr


def test_out_below_a_file_is_refused_before_the_work(model_folder: Path,
                                                      tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file")
    done = _eval(model_folder, blocker / "today")
    assert done.returncode == 1
    assert f"--out {blocker / 'today'} cannot be created: {blocker} is a file" in done.stderr
    assert "images x" not in done.stderr and "image x" not in done.stderr


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_images_that_is_no_folder_is_said_so(model_folder: Path, tmp_path: Path,
                                             kind: str) -> None:
    images = tmp_path / "photos"
    if kind == "file":
        images.write_text("a file")
    done = palidesk("eval", "--model", model_folder, "--task", "caption", "--images", images,
                    "--out", tmp_path / "out", timeout=60)
    assert done.returncode == 1
    said = "does not exist" if kind == "missing" else "is a file"
    assert f"--images {images} {said}; give the folder of images" in done.stderr
