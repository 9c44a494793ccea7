"""Load on `palidesk serve`: 1, 4 and 16 concurrent clients against one real server
process, compared with `palidesk batch` on the same images.

    .venv/bin/python bench/serve_load.py                  # tiny test model, 200 requests
    .venv/bin/python bench/serve_load.py --model "$PALIDESK_BENCH_MODELS"/pg2-3b-224-gguf \\
        --quant Q4_K_M --requests 200 --tokens 16

Every request is a `POST /v1/run` of a distinct random 224x224 PNG (so neither the image
cache nor batch's identical-image copy helps either side). Reported per client count:
p50/p95 latency, images/hour, requests answered (each exactly once: the history gains one
record per request), the server's overhead per request (wall latency at one client minus
the engine's own time, ``first_token_s + decode_s`` of the record; measured at one client
only, where no request waits for another), /health latency
(p50/p99) polled while the engine is busy, and the server's resident memory after the
model loaded and after all requests. `palidesk batch` runs the same images with the same
model, quantization and threads; its steady images/s (after the first image) is the
baseline. Results go to ``bench/results/serve-<time>.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_bench import make_images, tiny_model

from tests.server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def history_count(home: Path) -> int:
    path = home / "data" / "PaliDesk" / "history.sqlite3"
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]


def load_round(server: ServerProcess, images: list[Path], clients: int, tokens: int,
               watch_health: bool) -> dict[str, object]:
    bodies = [{"image": base64.b64encode(p.read_bytes()).decode(), "task": "caption",
               "max_tokens": tokens, "image_name": p.name} for p in images]
    health: list[float] = []
    busy = threading.Event()

    def poll() -> None:
        while not busy.is_set():
            t0 = time.perf_counter()
            server.request("GET", "/health")
            health.append(time.perf_counter() - t0)
            time.sleep(0.05)

    def one(body: dict) -> tuple[float, int, dict]:
        t0 = time.perf_counter()
        status, _, record = server.request("POST", "/v1/run", body, timeout=3600)
        return time.perf_counter() - t0, status, record  # type: ignore[return-value]

    before = history_count(server.home)
    poller = threading.Thread(target=poll) if watch_health else None
    start = time.perf_counter()
    if poller:
        poller.start()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, bodies))
    seconds = time.perf_counter() - start
    busy.set()
    if poller:
        poller.join()
    latencies = [a[0] for a in answers]
    ok = [a for a in answers if a[1] == 200]
    engine = [a[2]["timings"]["first_token_s"] + a[2]["timings"]["decode_s"] for a in ok]
    names = [a[2]["image"] for a in ok]
    result: dict[str, object] = {
        "clients": clients, "requests": len(bodies), "answered_200": len(ok),
        "answered_twice": len(names) - len(set(names)),
        "stored": history_count(server.home) - before,
        "seconds": round(seconds, 2), "images_per_hour": round(len(ok) / seconds * 3600),
        "p50_s": round(statistics.median(latencies), 4),
        "p95_s": round(percentile(latencies, 0.95), 4),
    }
    if clients == 1:  # with more clients the latency also holds the wait in the queue
        result["overhead_ms_median"] = round(1000 * statistics.median(
            [lat - eng for (lat, _, _), eng in zip(ok, engine, strict=True)]), 1)
    if health:
        result["health_p50_ms"] = round(1000 * statistics.median(health), 1)
        result["health_p99_ms"] = round(1000 * percentile(health, 0.99), 1)
        result["health_samples"] = len(health)
    return result


def batch_rate(model: Path, quant: str, folder: Path, tokens: int, threads: int,
               work: Path) -> dict[str, float]:
    out = work / "batch.jsonl"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "batch", str(folder), "--model", str(model),
         "--quant", quant, "--task", "caption", "--max-tokens", str(tokens), "--threads",
         str(threads), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    found = re.search(r"\(([\d.]+) images/s(?:; ([\d.]+) after the first)?\)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr)
    steady = float(found[2] or found[1])
    return {"wall_s": round(wall, 2), "images_per_s": float(found[1]),
            "steady_images_per_hour": round(steady * 3600)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: the tiny model)")
    parser.add_argument("--quant", help="default: F16 for the tiny model (all it has)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-batch", action="store_true",
                        help="no `palidesk batch` baseline (a long soak of the server only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or tiny_model(work)
        args.quant = args.quant or ("F16" if args.model is None else None)
        if args.quant is None:
            parser.error("name --quant for your model (the same for serve and batch)")
        counts = [int(c) for c in args.clients.split(",")]
        # Distinct images for batch and for every round: no side gets the image cache.
        folder = work / "images"
        make_images(folder, args.requests * (len(counts) + (0 if args.skip_batch else 1)) + 1)
        every = sorted(folder.glob("*.png"))
        batch_folder = work / "batch-images"
        batch_folder.mkdir()
        taken = 0 if args.skip_batch else args.requests
        for path in every[:taken]:
            path.rename(batch_folder / path.name)
        images = every[taken:]
        batch = None if args.skip_batch else batch_rate(model, args.quant, batch_folder,
                                                          args.tokens, args.threads, work)
        (work / "home").mkdir()
        server = ServerProcess(model, work / "home", "--quant", args.quant, "--threads",
                               str(args.threads), "--queue", "64")
        try:
            server.wait_ready(300)
            server.request("POST", "/v1/run", {  # warm-up, not counted
                "image": base64.b64encode(images[0].read_bytes()).decode(),
                "task": "caption", "max_tokens": args.tokens})
            rss_loaded = rss_mb(server.process.pid)
            rounds = []
            for index, clients in enumerate(counts):
                share = images[1 + index * args.requests:1 + (index + 1) * args.requests]
                rounds.append(load_round(server, share, clients, args.tokens,
                                         watch_health=True))
            rss_after = rss_mb(server.process.pid)
        finally:
            code = server.stop()
    for r in rounds:
        if batch is not None:
            r["vs_batch"] = round(r["images_per_hour"] / batch["steady_images_per_hour"], 3)  # type: ignore[operator]
    result = {"model": str(args.model or "tiny pg2-tiny-224"), "quant": args.quant,
              "tokens": args.tokens, "threads": args.threads, "batch": batch,
              "rounds": rounds, "rss_loaded_mb": round(rss_loaded, 1),
              "rss_after_mb": round(rss_after, 1),
              "rss_growth_mb": round(rss_after - rss_loaded, 1), "server_exit": code,
              "total_requests": args.requests * len(rounds)}
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
