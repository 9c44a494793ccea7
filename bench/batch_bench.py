"""Throughput of `palidesk batch`: local vs `--ray local`, and what Ray's start-up costs.

    .venv/bin/python bench/batch_bench.py                       # tiny test model, 40 images
    .venv/bin/python bench/batch_bench.py --model $PALIDESK_BENCH_MODELS/pg2-3b-224-gguf \\
        --quant Q4_K_M --images 8 --tokens 16

Each configuration is one real `palidesk batch` process over the same freshly made
images (distinct random 224x224 PNGs), into a fresh results file:

- ``local-2t`` (the baseline, as a user runs it): local batch, 2 threads;
- ``local-1t``: local batch, 1 thread;
- ``ray-1x2``: ``--ray local``, 1 worker of 2 CPUs (2 threads);
- ``ray-2x1``: ``--ray local``, 2 workers of 1 CPU each (1 thread each).

"images/s" is the whole batch (model load and Ray's start-up included); "steady" is the
rate after the first image finished, i.e. what a long batch converges to.

Reported per configuration: wall time of the whole command (Python start, model load,
Ray start and stop included), the batch's own time and images/s (from its summary), and
for Ray the connect time, time to the first image back and the engine load time each
worker reported. Ratios are against ``local-2t`` measured in the same run. The machine
is shared, so the run also records how many cores the whole machine kept busy
(``machine_busy_cores``, from /proc/stat; our own run accounts for up to 2).
Configurations run in turn ``--repeats`` times (interleaved) and medians are kept.
Results go to ``bench/results/batch-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from cpu_load import _total_busy_s, loadavg  # noqa: E402

CONFIGS = {
    "local-2t": ["--threads", "2"],
    "local-1t": ["--threads", "1"],
    "ray-1x2": ["--ray", "local", "--ray-workers", "1", "--ray-cpus-per-worker", "2"],
    "ray-2x1": ["--ray", "local", "--ray-workers", "2", "--ray-cpus-per-worker", "1"],
}


def make_images(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):
        pixels = rng.integers(0, 255, size=(224, 224, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index:04d}.png")


def tiny_model(work: Path) -> Path:
    out = work / "tiny"
    subprocess.run([sys.executable, "-m", "app.cli.main", "convert",
                    str(ROOT / "tests/fixtures/tiny/pg2-tiny-224"), "--out", str(out),
                    "--outtype", "f16"], check=True, cwd=ROOT, capture_output=True)
    return out


def run_config(name: str, model: Path, quant: str, images: Path, tokens: int,
               out: Path) -> dict[str, object]:
    args = [sys.executable, "-m", "app.cli.main", "batch", str(images), "--model", str(model),
            "--quant", quant, "--task", "caption", "--max-tokens", str(tokens),
            "--no-progress", "--out", str(out), *CONFIGS[name]]
    busy, start = _total_busy_s(), time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    busy = (_total_busy_s() - busy) / wall
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    err = done.stderr
    summary = re.search(r"done: (\d+) labelled.* in ([\d.]+) s", err)
    assert summary, err
    row: dict[str, object] = {
        "config": name, "wall_s": wall, "images": int(summary[1]),
        "batch_s": float(summary[2]), "images_per_s": int(summary[1]) / float(summary[2]),
        "machine_busy_cores": busy, "loadavg_after": loadavg(),
    }
    if m := re.search(r"; ([\d.]+) after the first\)", err):
        row["steady_images_per_s"] = float(m[1])
    if m := re.search(r"Ray: connected in ([\d.]+) s", err):
        row["ray_connect_s"] = float(m[1])
    if m := re.search(r"first image back ([\d.]+) s", err):
        row["ray_first_image_s"] = float(m[1])
    if m := re.search(r"engine load per worker ([\d.]+)-([\d.]+) s", err):
        row["worker_load_s"] = [float(m[1]), float(m[2])]
    print(f"{name}: {row['images_per_s']:.2f} images/s, batch {row['batch_s']:.1f} s, "
          f"wall {wall:.1f} s, machine busy {busy:.2f} cores", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: the tiny test model)")
    parser.add_argument("--quant", default="F16")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        work = Path(tmp)
        model = args.model or tiny_model(work)
        make_images(work / "images", args.images)
        rows = []
        for repeat in range(args.repeats):
            for name in args.configs.split(","):
                out = work / f"{name}-{repeat}.jsonl"
                rows.append(run_config(name, model, args.quant, work / "images",
                                       args.tokens, out))
    table = {}
    for name in args.configs.split(","):
        mine = [r for r in rows if r["config"] == name]
        table[name] = {key: statistics.median(float(r[key]) for r in mine)
                       for key in ("images_per_s", "steady_images_per_s", "batch_s", "wall_s",
                                   "machine_busy_cores", "ray_connect_s", "ray_first_image_s")
                       if key in mine[0]}
        if "worker_load_s" in mine[0]:
            table[name]["worker_load_s_max"] = statistics.median(
                max(r["worker_load_s"]) for r in mine)
    base = table.get("local-2t", {}).get("images_per_s")
    print("\n| config | images/s | vs local-2t | steady images/s | batch s | wall s | "
          "Ray connect s | first image s | worker load s | machine busy cores |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, t in table.items():
        ratio = f"{t['images_per_s'] / base:.2f}" if base else "—"
        steady = t.get("steady_images_per_s")
        print(f"| {name} | {t['images_per_s']:.2f} | {ratio} | "
              f"{'—' if steady is None else f'{steady:.2f}'} | {t['batch_s']:.1f} | "
              f"{t['wall_s']:.1f} | {t.get('ray_connect_s', '—')} | "
              f"{t.get('ray_first_image_s', '—')} | {t.get('worker_load_s_max', '—')} | "
              f"{t['machine_busy_cores']:.2f} |")
    result = {"model": str(args.model or "tiny pg2-tiny-224"), "quant": args.quant,
              "images": args.images, "tokens": args.tokens, "cpus": os.cpu_count(),
              "rows": rows, "medians": table, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                   time.gmtime())}
    out = args.out or BENCH / "results" / f"batch-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
