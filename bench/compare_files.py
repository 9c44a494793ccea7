"""Decode speed of several text GGUFs of the same model, alternated in one process.

    .venv/bin/python bench/compare_files.py A.gguf B.gguf [--threads 2] [--repeats 5]

Loads every file once (bare llama.cpp loop with the engine's parameters), then runs
A B A B ... (order reversed every other round) and reports median prefill time and decode
tokens/s, with the cores other processes used meanwhile. Used to measure what another
type for the tied token_embd/output matrix saves (``bench/quantize_variant.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from cpu_load import wait_quiet  # noqa: E402
from engine_bench import BareLoop  # noqa: E402

from app.engine.llama_library import ensure_backend, use_extra_buffer_types  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--prefix", type=int, default=260)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--noisy", type=float, default=0.1)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--wait-quiet", type=float, default=20.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ensure_backend()
    loops = {f.name: BareLoop(f, 1024, 512, 512, args.threads, use_extra_buffer_types())
             for f in args.files}
    for loop in loops.values():
        loop.run(args.prefix, 3)
    runs: dict[str, list[dict]] = {name: [] for name in loops}
    try:
        for r in range(args.repeats):
            names = list(loops) if r % 2 == 0 else list(reversed(loops))
            for name in names:
                tries = []
                for _ in range(1 + args.retries):
                    if args.wait_quiet:
                        wait_quiet(timeout_s=args.wait_quiet)
                    tries.append(loops[name].run(args.prefix, args.tokens))
                    if tries[-1]["other_cores"] <= args.noisy:
                        break
                row = min(tries, key=lambda t: t["other_cores"])
                runs[name].append(row)
                print(f"{name:40s} prefill {row['prefill_s']:5.2f} s  decode "
                      f"{row['decode_tokens_per_s']:6.2f} tok/s  other {row['other_cores']:.2f}",
                      flush=True)
    finally:
        for loop in loops.values():
            loop.close()
    summary = {name: {"size_gb": round((f.stat().st_size) / 1e9, 3),
                      "prefill_s": round(statistics.median(r["prefill_s"] for r in rows), 3),
                      "decode_tokens_per_s": round(statistics.median(
                          r["decode_tokens_per_s"] for r in rows), 3),
                      "other_cores": round(statistics.median(r["other_cores"] for r in rows), 3)}
               for (name, rows), f in zip(runs.items(), args.files, strict=True)}
    print("medians:")
    for name, s in summary.items():
        print(f"  {name:40s} {json.dumps(s)}")
    out = args.out or BENCH / "results" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "tokens": args.tokens, "runs": runs,
                               "median": summary}, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
