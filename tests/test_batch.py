"""`palidesk batch`: streamed inputs, one durable JSON line per image, resume, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_dataset import make_dataset, without_timings

from app.export import clean_output_text
from conftest import IMAGES

ROOT = Path(__file__).resolve().parent.parent
DETECT = ("--task", "detect", "--classes", "cat;dog", "--max-tokens", "8")


def palidesk(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def model(converted) -> Path:
    return converted("pg2-tiny-224")


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path / "data"
    return root, make_dataset(root)


def test_batch_labels_a_nested_folder_with_bad_files_and_duplicates(model, dataset, tmp_path):
    root, files = dataset
    out = tmp_path / "results.jsonl"
    done = palidesk("batch", root, "--model", model, "--quant", "F16", *DETECT, "--out", out)
    assert done.returncode == 1, done.stderr  # some images failed, and it says which
    assert "Traceback" not in done.stderr
    records = {r["image"]: r for r in read_records(out)}
    expected = files["good"] + files["duplicates"] + files["bad"]
    assert sorted(records) == sorted(str(p) for p in expected)  # nothing ignored is listed
    for path in files["good"]:
        record = records[str(path)]
        assert "error" not in record and record["tokens"]
        assert record["prompt"] == "detect cat ; dog" and record["quantization"] == "F16"
        assert record["model"] == model.name and len(record["image_sha256"]) == 64
    for path in files["bad"]:
        assert records[str(path)]["error"]
    assert "not an image" in records[str(files["bad"][0])]["error"]
    # Identical bytes are labelled once (whichever comes first) and copied, naming it.
    dupes, good = files["duplicates"], files["good"]
    for one, other in ((dupes[0], good[-1]), (dupes[1], good[0])):
        first, second = records[str(one)], records[str(other)]
        if "duplicate_of" in first:
            first, second = second, first
        assert second["duplicate_of"] == first["image"] and "duplicate_of" not in first
        assert second["tokens"] == first["tokens"] and second["objects"] == first["objects"]
    assert "7 labelled, 2 copied from identical images, 0 skipped" in done.stderr
    assert "3 failed" in done.stderr and "not_really.jpg" in done.stderr


def test_batch_records_are_run_json_records(model, tmp_path):
    """Same fields and tokens as `palidesk run --json`, plus what resume needs."""
    image = IMAGES / "noise_97x150.png"
    out = tmp_path / "r.jsonl"
    done = palidesk("batch", image, "--model", model, "--quant", "f16", *DETECT, "--out", out)
    assert done.returncode == 0, done.stderr
    ran = palidesk("run", "--model", model, "--quant", "F16", *DETECT, "--json", image)
    assert ran.returncode == 0, ran.stderr
    batch, run = read_records(out)[0], json.loads(ran.stdout)
    assert set(batch) == set(run) | {"image_sha256", "model", "model_id", "quantization",
                                     "options_key", "max_new_tokens"}
    assert batch["options_key"] == "greedy" and batch["max_new_tokens"] == 8
    assert batch["image"] == str(image.resolve())
    for key in ("tokens", "text", "objects", "prompt", "task", "stop_reason", "image_size"):
        assert batch[key] == run[key], key


def test_resume_skips_done_images_and_never_writes_a_path_twice(model, dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "results.jsonl"
    args = ("batch", root, "--model", model, "--quant", "F16", *DETECT, "--out", out)
    first = palidesk(*args, "--limit", "4")
    assert "Traceback" not in first.stderr
    head = out.read_bytes()
    assert len(read_records(out)) == 4
    again = palidesk(*args)
    assert again.returncode == 1 and "--resume" in again.stderr  # never mixes jobs silently
    assert out.read_bytes() == head
    resumed = palidesk(*args, "--resume")
    assert "resuming: 4 records" in resumed.stderr and "4 skipped" in resumed.stderr
    assert out.read_bytes().startswith(head)  # earlier lines are kept as they were
    images = [r["image"] for r in read_records(out)]
    assert len(images) == len(set(images)) == 12
    # The same inputs twice over, and another prompt: only the new prompt's work is added.
    twice = palidesk(*args, "--resume")
    assert "12 skipped" in twice.stderr and len(read_records(out)) == 12
    other = palidesk("batch", root / "a", "--model", model, "--quant", "F16", "--task",
                     "caption", "--max-tokens", "4", "--out", out, "--resume")
    added = read_records(out)[12:]
    assert added and {r["prompt"] for r in added} == {"caption en"}, other.stderr


def _latest(out: Path) -> dict[str, dict]:
    """The last record written for each image."""
    return {r["image"]: r for r in read_records(out)}


def test_resume_with_other_options_runs_the_images_again_like_the_window(model, tmp_path):
    """Issue 16's reproduction: a resumed batch never keeps an answer made under other
    options (a lower max-tokens limit it was cut at, or greedy for sampled)."""
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("shapes_320x240.png", "noise_97x150.png", "strokes_500x500.png"):
        (images / name).write_bytes((IMAGES / name).read_bytes())
    count = 3
    out = tmp_path / "r.jsonl"
    base = ("batch", images, "--model", model, "--quant", "F16", "--task", "caption",
            "--out", out)
    first = palidesk(*base, "--max-tokens", "8")
    assert first.returncode == 0, first.stderr
    cut = [r for r in read_records(out) if r["stop_reason"] == "max_tokens"]
    assert cut, "the tiny model should run into the 8-token limit on some image"
    # A higher limit: answers cut at 8 are run again, not kept.
    longer = palidesk(*base, "--max-tokens", "30", "--resume")
    assert longer.returncode == 0, longer.stderr
    assert f"{len(cut)} of them were made with other options" in longer.stderr
    assert f"{len(cut)} labelled" in longer.stderr
    latest = _latest(out)
    for record in cut:
        again = latest[record["image"]]
        assert again["max_new_tokens"] == 30 and len(again["tokens"]) > 8
        assert again["tokens"][:8] == record["tokens"]  # greedy: the same start, then more
    # Sampling: every greedy answer is made again under the new options.
    sampled = palidesk(*base, "--max-tokens", "30", "--temperature", "1.0", "--seed", "3",
                       "--resume")
    assert sampled.returncode == 0, sampled.stderr
    assert f"{count} labelled" in sampled.stderr and "0 skipped" in sampled.stderr
    latest = _latest(out)
    assert {r["options_key"] for r in latest.values()} == {"sample:t=1:k=0:p=1:seed=3"}
    # Each set of options now finds its own answers done.
    for again in (("--max-tokens", "30", "--temperature", "1.0", "--seed", "3"),
                  ("--max-tokens", "30")):
        lines = len(read_records(out))
        resumed = palidesk(*base, *again, "--resume")
        assert f"{count} skipped" in resumed.stderr and "0 labelled" in resumed.stderr
        assert len(read_records(out)) == lines


def test_a_results_file_without_options_fields_still_resumes(model, tmp_path):
    """Files written before the options were recorded read as greedy, limit unknown."""
    image = IMAGES / "noise_97x150.png"
    out = tmp_path / "r.jsonl"
    args = ("batch", image, "--model", model, "--quant", "F16", "--task", "caption",
            "--max-tokens", "8", "--out", out)
    assert palidesk(*args).returncode == 0
    old = [{k: v for k, v in r.items() if k not in ("options_key", "max_new_tokens")}
           for r in read_records(out)]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    resumed = palidesk(*args, "--resume")
    assert resumed.returncode == 0 and "1 skipped" in resumed.stderr, resumed.stderr
    sampled = palidesk(*args, "--temperature", "0.7", "--resume")
    assert "1 labelled" in sampled.stderr, sampled.stderr


def test_a_torn_last_line_is_dropped_and_that_image_redone(model, tmp_path):
    images = [IMAGES / "shapes_320x240.png", IMAGES / "noise_97x150.png"]
    out = tmp_path / "r.jsonl"
    args = ("batch", *images, "--model", model, "--quant", "F16", *DETECT, "--out", out)
    assert palidesk(*args).returncode == 0
    whole = out.read_text().splitlines(keepends=True)
    out.write_text(whole[0] + whole[1][: len(whole[1]) // 2])  # as a kill mid-write leaves it
    resumed = palidesk(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "cut off" in resumed.stderr and "1 labelled, 0 copied" in resumed.stderr
    again = read_records(out)
    assert [r["image"] for r in again] == [str(p) for p in images]
    assert without_timings(again[1]) == without_timings(json.loads(whole[1]))


def test_kill_9_mid_batch_loses_nothing_finished_and_resume_completes(model, tmp_path):
    root = tmp_path / "data"
    files = make_dataset(root, distinct=30)
    expected = sorted(str(p) for p in files["good"] + files["duplicates"] + files["bad"])
    out = tmp_path / "results.jsonl"
    args = [sys.executable, "-m", "app.cli.main", "batch", str(root), "--model", str(model),
            "--quant", "F16", "--task", "caption", "--max-tokens", "48", "--out", str(out)]
    child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.005)
    assert child.poll() is None, "the batch ended before it could be killed: make it longer"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = out.read_bytes()
    finished = before[: before.rfind(b"\n") + 1]
    done_before = [json.loads(line)["image"] for line in finished.splitlines()]
    assert 5 <= len(done_before) < len(expected)
    resumed = subprocess.run([*args, "--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert "Traceback" not in resumed.stderr
    assert out.read_bytes().startswith(finished)  # nothing finished was lost or rewritten
    images = [r["image"] for r in read_records(out)]
    assert sorted(images) == expected  # every image exactly once: none lost, none doubled
    assert f"{len(done_before)} skipped" in resumed.stderr


def test_inputs_can_be_globs_and_lists_and_a_path_named_twice_is_written_once(model, tmp_path):
    root = tmp_path / "data"
    files = make_dataset(root, distinct=3)
    listing = tmp_path / "lists" / "some.txt"
    listing.parent.mkdir()
    listing.write_text(f"# chosen images\n../data/b/shapes.png\n\n{files['good'][0]}\n")
    out = tmp_path / "r.jsonl"
    done = palidesk("batch", listing, str(root / "**" / "*.png"), "--model", model,
                    "--quant", "F16", "--task", "caption", "--max-tokens", "4", "--out", out)
    assert done.returncode == 1, done.stderr  # truncated.png
    images = [r["image"] for r in read_records(out)]
    pngs = {str(p) for group in files.values() for p in group
            if p.suffix == ".png" and not p.name.startswith(".")
            and ".cache" not in p.parts}
    assert set(images) == pngs | {str(files["good"][0])}
    assert len(images) == len(set(images))
    assert "1 skipped" in done.stderr  # shapes.png came from the list and the glob


def test_export_writes_coco_and_captions_from_the_results(model, dataset, tmp_path):
    root, files = dataset
    out = tmp_path / "results.jsonl"
    done = palidesk("batch", root, "--model", model, "--quant", "F16", *DETECT, "--out", out,
                    "--export", "coco")
    coco = json.loads((tmp_path / "results.coco.json").read_text())
    assert "exported coco" in done.stderr
    # Every image that was labelled (copies included), none that failed.
    assert len(coco["images"]) == len(files["good"]) + len(files["duplicates"])
    captions = palidesk("batch", root / "a", "--model", model, "--quant", "F16", "--task",
                        "caption", "--max-tokens", "6", "--out", tmp_path / "c.jsonl",
                        "--export", "captions")
    assert "exported captions" in captions.stderr, captions.stderr
    written = 0
    for record in read_records(tmp_path / "c.jsonl"):
        if "error" not in record and clean_output_text(record["text"]):
            caption = Path(record["image"]).with_suffix(".txt")
            assert caption.read_text() == clean_output_text(record["text"])
            written += 1
    assert written


def test_bad_arguments_are_refused_in_plain_words(model, tmp_path):
    out = tmp_path / "r.jsonl"
    done = palidesk("batch", tmp_path / "nowhere", "--model", model, "--task", "caption",
                    "--out", out)
    assert done.returncode == 1 and "does not exist" in done.stderr and not out.exists()
    (tmp_path / "empty").mkdir()
    done = palidesk("batch", tmp_path / "empty", "--model", model, "--task", "caption",
                    "--out", out)
    assert done.returncode == 1 and "No images found" in done.stderr and not out.exists()
    done = palidesk("batch", IMAGES, "--model", "no-such-model", "--task", "caption",
                    "--out", out)
    assert done.returncode == 1 and "neither a model folder nor the name of an installed" \
        in done.stderr
    done = palidesk("batch", IMAGES, "--model", model, "--task", "caption", "--out", out,
                    "--export", "yolo")
    assert done.returncode == 1 and "needs --task detect" in done.stderr and not out.exists()
    done = palidesk("batch", IMAGES, "--model", model, "--task", "caption", "--limit", "0",
                    "--out", out)
    assert done.returncode == 2 and "a whole number from 1 to" in done.stderr
    out.write_text('{"image": "x.jpg", "text": "from somewhere else"}\n')
    done = palidesk("batch", IMAGES, "--model", model, "--task", "caption", "--out", out,
                    "--resume")
    assert done.returncode == 1 and "not a palidesk batch record" in done.stderr
    assert "Traceback" not in done.stderr


def test_ray_without_the_extra_says_how_to_install_it(model, tmp_path):
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('ray is not here')\n")
    out = tmp_path / "r.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "batch", str(IMAGES), "--model", str(model),
         "--task", "caption", "--out", str(out), "--ray", "local"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(fake.parent)},
    )
    assert done.returncode == 1 and "palidesk[cluster]" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_segment_uses_the_mask_decoder_as_run_does(model, tmp_path):
    from mask_weights import write_random_decoder

    image = IMAGES / "shapes_320x240.png"
    out = tmp_path / "r.jsonl"
    segment = ("--task", "segment", "--classes", "cat", "--max-tokens", "24")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not weights")
    refused = palidesk("batch", image, "--model", model, *segment, "--out", out,
                       "--mask-decoder", bad)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert not out.exists()  # told before any model loaded or file was written
    weights = write_random_decoder(tmp_path / "vae-oid.npz")
    done = palidesk("batch", image, "--model", model, "--quant", "F16", *segment, "--out", out,
                    "--mask-decoder", weights)
    assert done.returncode == 0, done.stderr
    ran = palidesk("run", "--model", model, "--quant", "F16", *segment, "--json",
                   "--mask-decoder", weights, image)
    batch, run = read_records(out)[0], json.loads(ran.stdout)
    assert batch["objects"] == run["objects"] and batch["tokens"] == run["tokens"]
