"""``palidesk batch`` against a hostile user (issue 18): Ctrl+C, device files as outputs,
file names that are not UTF-8, a Ray address where nothing listens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_dataset import make_dataset

from conftest import IMAGES, every_cpu

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "app.cli.main"]


def palidesk(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def model(converted) -> Path:
    return converted("pg2-tiny-224")


def _interrupt_when(child: subprocess.Popen, out: Path, lines: int) -> float:
    """Send SIGINT once ``out`` holds ``lines`` records; returns when it was sent."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.005)
    assert child.poll() is None, "the batch ended before Ctrl+C: make it longer"
    child.send_signal(signal.SIGINT)
    return time.monotonic()


def _check_stopped_and_resume(child: subprocess.Popen, sent: float, out: Path,
                              args: list[str], expected: list[str], limit_s: float) -> str:
    _, stderr = child.communicate(timeout=120)
    elapsed = time.monotonic() - sent
    assert child.returncode == 130, stderr
    assert elapsed < limit_s, f"stopped {elapsed:.1f} s after Ctrl+C"
    assert "Exception ignored" not in stderr and "Traceback" not in stderr
    assert "add --resume to continue" in stderr
    kept = out.read_bytes()
    assert kept.endswith(b"\n")  # no half-written line for the image in progress
    done_before = [json.loads(line)["image"] for line in kept.splitlines()]
    assert 3 <= len(done_before) < len(expected)
    resumed = subprocess.run([*args, "--resume"], cwd=ROOT, capture_output=True, text=True,
                             preexec_fn=every_cpu if "--ray" in args else None, timeout=900)
    assert resumed.returncode == 1, resumed.stderr  # the dataset's broken files
    assert out.read_bytes().startswith(kept)  # nothing finished lost or rewritten
    images = [json.loads(line)["image"] for line in out.read_text().splitlines()]
    assert sorted(images) == expected  # each image once: the interrupted one redone
    return stderr


def test_ctrl_c_stops_a_local_batch_within_a_token_and_resume_completes(model, tmp_path):
    root = tmp_path / "data"
    files = make_dataset(root, distinct=12)
    expected = sorted(str(p) for p in files["good"] + files["duplicates"] + files["bad"])
    out = tmp_path / "results.jsonl"
    # Long greedy captions (~1 s each): Ctrl+C lands in the middle of a generation.
    args = [*COMMAND, "batch", str(root), "--model", str(model), "--quant", "F16", "--task",
            "caption", "--max-tokens", "400", "--out", str(out)]
    child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    sent = _interrupt_when(child, out, 3)
    _check_stopped_and_resume(child, sent, out, args, expected, limit_s=3.0)


@pytest.mark.slow
def test_ctrl_c_stops_a_ray_batch_and_resume_completes(model, tmp_path):
    pytest.importorskip("ray.data")
    root = tmp_path / "data"
    files = make_dataset(root, distinct=12)
    expected = sorted(str(p) for p in files["good"] + files["duplicates"] + files["bad"])
    out = tmp_path / "results.jsonl"
    args = [*COMMAND, "batch", str(root), "--model", str(model), "--quant", "F16", "--task",
            "caption", "--max-tokens", "400", "--out", str(out), "--ray", "local",
            "--ray-workers", "1", "--ray-cpus-per-worker", "1", "--no-progress"]
    child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, preexec_fn=every_cpu)
    sent = _interrupt_when(child, out, 3)
    # Ray's own shutdown takes a few seconds on 2 shared cores; the workers stop with it.
    stderr = _check_stopped_and_resume(child, sent, out, args, expected, limit_s=30.0)
    assert "; 1 worker, each 1 CPU" in stderr  # not "1 workers"


# The devices are reached through a link in tmp_path: code that replaces the path it
# writes (as the export did) then replaces the link, never the machine's /dev node.
def _link_to(device: str, link: Path) -> Path:
    if not Path(device).exists():
        pytest.skip(f"no {device} here")
    link.symlink_to(device)
    return link


@pytest.mark.parametrize("device", ["/dev/full", "/dev/zero"])
def test_a_device_as_results_file_is_refused(model, tmp_path, device):
    out = _link_to(device, tmp_path / "results.jsonl")
    started = time.monotonic()
    done = palidesk("batch", IMAGES, "--model", model, "--task", "caption", "--out", out,
                    "--resume", timeout=60)
    assert done.returncode == 1
    assert f"{out} is not a regular file (a device or a pipe)" in done.stderr
    assert time.monotonic() - started < 30  # was an endless read at 100 % CPU


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_a_fifo_as_results_file_is_refused(model, tmp_path):
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    done = palidesk("batch", IMAGES, "--model", model, "--task", "caption", "--out", fifo,
                    timeout=60)
    assert done.returncode == 1 and "is not a regular file" in done.stderr


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_export_to_a_device_is_refused_before_the_batch(model, tmp_path, device):
    target = _link_to(device, tmp_path / "out.coco.json")
    out = tmp_path / "r.jsonl"
    done = palidesk("batch", IMAGES / "shapes_320x240.png", "--model", model, "--task",
                    "detect", "--classes", "circle", "--out", out, "--export", "coco",
                    "--export-to", target, timeout=120)
    assert done.returncode == 1
    assert f"--export-to {target} is not a regular file (a device or pipe)" in done.stderr
    assert not out.exists()  # refused before anything ran
    assert target.is_symlink()  # never replaced by a regular file


def test_one_exported_file_is_one_file(model, tmp_path):
    out = tmp_path / "r.jsonl"
    done = palidesk("batch", IMAGES / "shapes_320x240.png", "--model", model, "--task",
                    "detect", "--classes", "circle", "--max-tokens", "8", "--out", out,
                    "--export", "coco", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "exported coco: 1 file written to" in done.stderr  # was "1 files"


def test_export_yolo_onto_a_file_is_refused(model, tmp_path):
    out = tmp_path / "r.jsonl"
    taken = tmp_path / "labels"
    taken.write_text("mine")
    done = palidesk("batch", IMAGES / "shapes_320x240.png", "--model", model, "--task",
                    "detect", "--classes", "circle", "--out", out, "--export", "yolo",
                    "--export-to", taken, timeout=120)
    assert done.returncode == 1 and "is not a folder; yolo writes a folder" in done.stderr
    assert taken.read_text() == "mine" and not out.exists()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="byte file names: Linux")
def test_a_file_name_that_is_not_utf8_neither_stops_the_batch_nor_its_resume(model, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    odd = os.path.join(os.fsencode(root), b"caf\xe9-\xff.png")
    with open(odd, "wb") as file:
        file.write((IMAGES / "noise_97x150.png").read_bytes())
    plain = root / "plain.png"
    plain.write_bytes((IMAGES / "shapes_320x240.png").read_bytes())
    out = tmp_path / "r.jsonl"
    args = ["batch", root, "--model", model, "--task", "caption", "--max-tokens", "4",
            "--out", out]
    done = palidesk(*args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = out.read_bytes().decode("utf-8").splitlines()  # strict: valid UTF-8
    images = sorted(json.loads(line)["image"] for line in lines)
    assert images == sorted([str(plain), os.fsdecode(odd)])  # the name that opens the file
    again = palidesk(*args, "--resume")
    assert again.returncode == 0, again.stderr
    assert "2 skipped" in again.stderr
    assert len(out.read_bytes().splitlines()) == 2


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="byte file names: Linux")
@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_run_json_is_valid_utf8_for_a_name_that_is_not(model, tmp_path, locale):
    odd = os.path.join(os.fsencode(tmp_path), b"\xe9t\xe9.png")
    with open(odd, "wb") as file:
        file.write((IMAGES / "noise_97x150.png").read_bytes())
    done = subprocess.run(
        [*COMMAND, "run", "--model", str(model), "--task", "caption", "--max-tokens", "4",
         "--json", os.fsdecode(odd)], capture_output=True, timeout=300, cwd=ROOT,
        env={**os.environ, "LC_ALL": locale, "PYTHONIOENCODING": ""})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    record = json.loads(done.stdout.decode("utf-8"))  # strict UTF-8, then JSON
    assert record["image"] == os.fsdecode(odd)


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_ray_cluster_is_an_error_within_30_s(model, tmp_path, address):
    pytest.importorskip("ray")
    started = time.monotonic()
    done = palidesk("batch", IMAGES, "--model", model, "--task", "caption", "--out",
                    tmp_path / "r.jsonl", "--ray", address, timeout=120)
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert f"Cannot join the Ray cluster at '{address}': nothing is listening on port 1" \
        in done.stderr
    assert "Traceback" not in done.stderr


def test_resume_of_a_deeply_nested_line_is_a_sentence(model, tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    done = palidesk("batch", IMAGES, "--model", model, "--task", "caption", "--out", out,
                    "--resume", timeout=120)
    assert done.returncode == 1
    assert "Line 1 of" in done.stderr and "is not a palidesk batch record" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("export", [(), ("--export", "captions")])
def test_export_to_that_would_be_ignored_is_refused(model, tmp_path, export):
    out = tmp_path / "r.jsonl"
    done = palidesk("batch", IMAGES / "shapes_320x240.png", "--model", model, "--task",
                    "caption", "--out", out, *export, "--export-to", tmp_path / "x",
                    timeout=120)
    assert done.returncode == 1
    assert "--export-to is where --export coco or yolo writes" in done.stderr
    assert not out.exists()  # told before the batch, not "written to x" afterwards


def test_a_full_disk_under_the_results_file_says_the_disk_is_full(tmp_path, monkeypatch):
    import errno

    from app.batch import results_log
    from app.batch.record_keys import ResultsFileError

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with results_log.ResultsLog(tmp_path / "r.jsonl", resume=False) as log:
        monkeypatch.setattr(results_log.os, "fsync", full)
        with pytest.raises(ResultsFileError, match=r"r\.jsonl: the disk is full"):
            log.append({"image": "/a.png", "image_sha256": "00", "prompt": "p",
                        "model_id": "m", "quantization": "F16"})
