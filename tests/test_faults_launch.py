"""Friction at the door (issue 18): no display, a mistyped command, --help, a full disk,
and counts that read as English."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_score import PERFECT, coco_truth, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


def palidesk(*args: str | Path, env: dict[str, str] | None = None, stdout: object = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          stdout=stdout if stdout is not None else subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, cwd=ROOT,
                          env=env)


def _no_display_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return env


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="X11/Wayland only")
@pytest.mark.parametrize("args", [(), ("gui",), ("missing-photo.jpg",)])
def test_the_window_without_a_display_says_what_to_run_instead(args: tuple[str, ...]) -> None:
    done = palidesk(*args, env=_no_display_env())
    assert done.returncode == 1  # not Qt's abort (134)
    assert "there is no display to open the PaliDesk window on" in done.stderr
    assert "palidesk run IMAGE" in done.stderr


@pytest.mark.parametrize(("word", "suggestion"), [("scroe", "score"), ("bacth", "batch"),
                                                  ("modles", "models")])
def test_a_mistyped_command_is_an_unknown_command(word: str, suggestion: str) -> None:
    done = palidesk(word, env=_no_display_env())
    assert done.returncode == 2
    assert f"'{word}' is not a command, nor an image file here. Did you mean " \
           f"{suggestion}?" in done.stderr
    assert "display" not in done.stderr  # never taken for an image to open


def test_an_existing_file_without_extension_still_opens_the_window(tmp_path: Path) -> None:
    photo = tmp_path / "photo"
    photo.write_bytes(b"not checked here")
    done = palidesk(photo.name, env=_no_display_env())
    # Run from the repository root the bare name is no file there: a command typo.
    assert done.returncode == 2
    done = subprocess.run([sys.executable, "-m", "app.cli.main", "photo"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env=_no_display_env() | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and "no display" in done.stderr  # taken for the image


@pytest.mark.parametrize(("command", "words"), [
    ("run", "stream the answer to the terminal"),
    ("score", "Nothing is run."),
    ("eval", "report.json, report.html"),
])
def test_commands_have_a_description_in_help(command: str, words: str) -> None:
    done = palidesk(command, "--help")
    assert done.returncode == 0
    assert words in " ".join(done.stdout.split())


def test_a_full_disk_says_the_disk_is_full(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    predictions = write_jsonl(tmp_path / "run.jsonl", PERFECT)
    with open("/dev/full", "w") as full:
        done = palidesk("score", "--task", "detect", "--truth", coco_truth(tmp_path),
                        "--predictions", predictions, "--json", stdout=full)
    assert done.returncode == 1
    assert "error: the disk is full" in done.stderr
    assert "system error" not in done.stderr and "Exception ignored" not in done.stderr


def test_a_quantization_that_is_no_type_suggests_no_quantize(converted) -> None:
    from app.errors import ModelFolderError
    from app.model_files.model_folder import ModelFolder

    folder = ModelFolder(converted("pg2-tiny-224"))
    with pytest.raises(ModelFolderError) as caught:
        folder.resolve("../../x")
    assert "'../../x' is not a quantization type" in str(caught.value)
    assert "quantize" not in str(caught.value)


def test_a_batch_of_mostly_failures_claims_no_rate() -> None:
    from app.batch.summary import BatchSummary

    summary = BatchSummary(labelled=1, seconds=0.01)
    for index in range(9):
        summary.failures.append((f"{index}.jpg", "not an image"))
        summary.ran(float(index) * 1e-4)
    line = summary.lines("out.jsonl")[0]
    assert "images/s" not in line and "after the first" not in line

