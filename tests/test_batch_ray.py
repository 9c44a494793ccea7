"""`palidesk batch --ray local`: the Ray Data pipeline writes what the local batch writes.

Needs the cluster extra (installed by `tools/bootstrap.py --dev`). Ray's start-up is
slow on 2 cores (see docs/scaling.md), so one Ray run covers equality, resume and the
duplicate/bad-file rules together.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_dataset import make_dataset, without_timings

from conftest import every_cpu

pytest.importorskip(
    "ray.data", reason="Ray is not installed: `pip install -e '.[cluster]'` (part of --dev)"
)

ROOT = Path(__file__).resolve().parent.parent


def batch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", "batch", *map(str, args)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT,
                          preexec_fn=every_cpu)


def records(path: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    by_image = {r["image"]: without_timings(r) for r in lines}
    assert len(by_image) == len(lines), "an image was written twice"
    return by_image


@pytest.mark.slow
def test_ray_local_gives_the_local_batch_records_and_resumes_like_it(converted, tmp_path):
    model = converted("pg2-tiny-224")
    root = tmp_path / "data"
    make_dataset(root, distinct=15)  # 16 distinct images, 2 copies, 3 broken files: 21
    job = ("--model", model, "--quant", "F16", "--task", "detect", "--classes", "cat;dog",
           "--max-tokens", "12", "--threads", "1", "--no-progress")
    local_out, ray_out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    start = time.monotonic()
    local = batch(root, *job, "--out", local_out)
    local_s = time.monotonic() - start
    assert "Traceback" not in local.stderr, local.stderr
    # Ray resumes a file the local batch began: the same keys, the same file rules.
    begun = batch(root, *job, "--out", ray_out, "--limit", "5")
    assert "Traceback" not in begun.stderr
    start = time.monotonic()
    on_ray = batch(root, *job, "--out", ray_out, "--resume", "--ray", "local",
                   "--ray-workers", "2", "--ray-cpus-per-worker", "1")
    ray_s = time.monotonic() - start
    assert "Traceback" not in on_ray.stderr, on_ray.stderr
    assert "resuming: 5 records" in on_ray.stderr and "5 skipped" in on_ray.stderr
    expected, got = records(local_out), records(ray_out)
    assert len(expected) == 21
    assert sorted(got) == sorted(expected)
    # Which of two identical files counts as the original depends on which finishes
    # first on Ray; the records are the same apart from that note.
    for table in (expected, got):
        assert sum("duplicate_of" in r for r in table.values()) == 2
        for record in table.values():
            record.pop("duplicate_of", None)
    for image, record in expected.items():
        assert got[image] == record, image
    print(f"\nlocal batch {local_s:.1f} s, Ray local (2 workers) {ray_s:.1f} s", file=sys.stderr)


def test_a_worker_pool_that_cannot_start_is_refused_before_anything_runs(converted, tmp_path):
    model = converted("pg2-tiny-224")
    out = tmp_path / "r.jsonl"
    done = batch(tmp_path, "--model", model, "--task", "caption", "--out", out,
                 "--ray", "local", "--ray-cpus-per-worker", "999")
    assert done.returncode == 1 and "lower --ray-cpus-per-worker" in done.stderr
    done = batch(tmp_path, "--model", model, "--task", "caption", "--out", out,
                 "--ray", "local", "--ray-workers", "999", "--ray-cpus-per-worker", "1")
    assert done.returncode == 1 and "lower --ray-workers" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


@pytest.mark.slow
def test_ray_workers_follow_the_already_done_rule(converted, tmp_path):
    """A file begun with --max-tokens 8, resumed on Ray with 30: the workers run again
    exactly the answers cut at 8 (the snapshot they get applies the core's rule)."""
    model = converted("pg2-tiny-224")
    root = tmp_path / "data"
    make_dataset(root, distinct=3)
    job = ("--model", model, "--quant", "F16", "--task", "caption", "--threads", "1",
           "--no-progress")
    out = tmp_path / "r.jsonl"
    first = batch(root, *job, "--max-tokens", "8", "--out", out)
    assert "Traceback" not in first.stderr, first.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    cut = {r["image"] for r in lines if r.get("stop_reason") == "max_tokens"
           and "duplicate_of" not in r}
    assert cut, "the tiny model should run into the 8-token limit"
    on_ray = batch(root, *job, "--max-tokens", "30", "--out", out, "--resume", "--ray",
                   "local", "--ray-workers", "1", "--ray-cpus-per-worker", "1")
    assert "Traceback" not in on_ray.stderr, on_ray.stderr
    added = [json.loads(line) for line in out.read_text().splitlines()][len(lines):]
    rerun = {r["image"] for r in added}  # a cut original may come back as the copy on Ray
    assert cut <= rerun and all(r["max_new_tokens"] == 30 for r in added)
    assert all(len(r["tokens"]) > 8 for r in added if r["image"] in cut)
