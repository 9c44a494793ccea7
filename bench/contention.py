"""Decode speed when another process keeps one core busy (controlled contention).

    .venv/bin/python bench/contention.py --quant Q4_K_M --repeats 2

This machine has 2 cores and is shared. A busy process of our own (``hog``: a Python
``while True`` loop, started here and stopped by its pid) plays the other user. For each
configuration a fresh child process loads the text model (bare llama.cpp loop with the
engine's parameters, ``engine_bench.BareLoop``), warms up, and measures a ~260-token
prefill and single-token decode steps:

- threads 1 or 2;
- for 2 threads, the OpenMP wait policy of ggml's thread pool (llama-cpp-python's ggml
  is built with OpenMP, libgomp): default, ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once in
  barriers) or ``ACTIVE`` (spin);
- with and without the hog.

The wait policy is read when libgomp starts, so it can only be set per process: that is
why every configuration runs in its own child.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_models import BENCH_MODELS

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def child(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(ROOT))
    from engine_bench import BareLoop

    from app.engine.llama_library import ensure_backend, use_extra_buffer_types
    from app.model_files.model_folder import ModelFolder

    ensure_backend()
    path = ModelFolder(args.models).resolve(args.quant).text.path
    bare = BareLoop(path, 1024, 512, 512, args.threads, use_extra_buffer_types())
    bare.run(args.prefix, 3)
    Path(args.ready).write_text("ready")  # the parent starts the hog now
    while Path(args.ready).exists():
        time.sleep(0.05)
    row = bare.run(args.prefix, args.tokens)
    bare.close()
    print(json.dumps(row), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=BENCH_MODELS / "pg2-3b-224-gguf")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--tokens", type=int, default=10)
    parser.add_argument("--prefix", type=int, default=260)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--wait-quiet", type=float, default=20.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--ready", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    sys.path.insert(0, str(BENCH))
    from cpu_load import wait_quiet

    configs = [(1, None), (2, None), (2, "PASSIVE"), (2, "ACTIVE")]
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for hog in (False, True):
            for threads, policy in configs:
                key = f"threads={threads} policy={policy or 'default'} hog={int(hog)}"
                env = dict(os.environ)
                env.pop("OMP_WAIT_POLICY", None)
                if policy:
                    env["OMP_WAIT_POLICY"] = policy
                ready = Path(f"/tmp/contention-ready-{os.getpid()}")
                ready.unlink(missing_ok=True)
                if args.wait_quiet:
                    wait_quiet(timeout_s=args.wait_quiet)
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--child", "--models", str(args.models),
                     "--quant", args.quant, "--threads", str(threads), "--tokens",
                     str(args.tokens), "--prefix", str(args.prefix), "--ready", str(ready)],
                    env=env, stdout=subprocess.PIPE, text=True)
                while not ready.exists() and proc.poll() is None:
                    time.sleep(0.05)
                hog_proc = None
                if hog:
                    hog_proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    time.sleep(0.5)
                ready.unlink(missing_ok=True)
                out, _ = proc.communicate()
                if hog_proc is not None:
                    hog_proc.kill()  # our own hog, by its pid
                    hog_proc.wait()
                row = json.loads(out.strip().splitlines()[-1])
                runs.setdefault(key, []).append(row)
                print(f"{key:40s} prefill {row['prefill_s']:6.2f} s  decode "
                      f"{row['decode_tokens_per_s']:6.2f} tok/s  other cores "
                      f"{row['other_cores']:.2f}", flush=True)
    summary = {k: {"prefill_s": round(statistics.median(r["prefill_s"] for r in v), 3),
                   "decode_tokens_per_s": round(statistics.median(
                       r["decode_tokens_per_s"] for r in v), 3),
                   "other_cores": round(statistics.median(r["other_cores"] for r in v), 3),
                   "n": len(v)} for k, v in runs.items()}
    print("\nmedians:")
    for k, v in summary.items():
        print(f"  {k:40s} {json.dumps(v)}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or BENCH / "results" / f"contention-{args.quant.lower()}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"quant": args.quant, "tokens": args.tokens,
                               "prefix": args.prefix, "runs": runs, "median": summary},
                              indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
