"""Function-level profile of the decode loop with Linux ``perf`` (software clock sampling).

    .venv/bin/python bench/perf_decode.py --quant Q4_K_M --threads 2 --tokens 48

Loads the text model with the engine's parameters (bare llama.cpp loop, see
``engine_bench.BareLoop``), decodes a prefix, then samples only the single-token decode
steps: ``perf record -e cpu-clock`` is attached to this process for exactly that span.
Prints the hottest symbols (libggml-cpu exports its kernels, e.g.
``ggml_vec_dot_q4_K_q8_K``, ``ggml_vec_dot_q6_K_q8_K``, ``ggml_barrier``) and groups them.
Needs ``perf`` (Debian: linux-perf) and perf_event_paranoid <= 2; hardware counters are
not available in this VM, so only time is sampled.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench_models import BENCH_MODELS

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import llama_cpp  # noqa: E402
from cpu_load import wait_quiet  # noqa: E402
from engine_bench import BareLoop  # noqa: E402

from app.engine.llama_library import ensure_backend, use_extra_buffer_types  # noqa: E402
from app.model_files.model_folder import ModelFolder  # noqa: E402

GROUPS = [
    ("matmul Q6_K (LM head, half of ffn_down, attn_v)", r"vec_dot_q6_K"),
    ("matmul Q4_K", r"vec_dot_q4_K"),
    ("matmul Q8_0", r"vec_dot_q8_0"),
    ("matmul F16", r"vec_dot_f16|fp16"),
    ("quantize activations (q8_K / q8_0)", r"quantize_row|quantize_mat"),
    ("barrier / thread sync", r"ggml_barrier|graph_compute_thread|sched_yield|futex"),
    ("mul_mat driver", r"compute_forward_mul_mat"),
    ("attention", r"flash_attn|soft_max"),
    ("other ggml ops", r"ggml_compute_forward|ggml_vec"),
    ("python", r"_Py|Py[A-Z]|python"),
    ("kernel", r"\[k\]"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=BENCH_MODELS / "pg2-3b-224-gguf")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--text-file", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--prefix", type=int, default=260)
    parser.add_argument("--wait-quiet", type=float, default=0.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    ensure_backend()
    path = args.text_file or ModelFolder(args.models).resolve(args.quant).text.path
    bare = BareLoop(path, 1024, 512, 512, args.threads, use_extra_buffer_types())
    bare.run(args.prefix, 3)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = Path(f"/tmp/perf-decode-{os.getpid()}.data")
    if args.wait_quiet:
        wait_quiet(timeout_s=args.wait_quiet)
    # Prefill outside the sampled span, then sample the steps only.
    perf = None
    original = llama_cpp.llama_decode
    state = {"started": False}

    def decode(ctx, batch):
        nonlocal perf
        if batch.n_tokens == 1 and not state["started"]:
            state["started"] = True
            perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999",
                                     "-o", str(data), "-p", str(os.getpid()), "--", "sleep",
                                     "3600"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let perf attach
        return original(ctx, batch)

    llama_cpp.llama_decode = decode
    try:
        result = bare.run(args.prefix, args.tokens + 1)
    finally:
        llama_cpp.llama_decode = original
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        bare.close()
    # the first step includes the 1 s attach pause: recompute from the rest is not
    # possible here, so report the loop rate as measured (slightly low) and perf shares.
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,sym",
         "--percent-limit", "0.3"], capture_output=True, text=True).stdout
    rows = []
    for line in report.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(\[.\])\s+(.*)", line)
        if m:
            rows.append({"percent": float(m[1]), "dso": m[2], "kind": m[3],
                         "symbol": m[4].strip()})
    groups: dict[str, float] = {}
    for row in rows:
        label = "unattributed"
        text = f"{row['kind']} {row['symbol']} {row['dso']}"
        for name, pattern in GROUPS:
            if re.search(pattern, text):
                label = name
                break
        groups[label] = round(groups.get(label, 0.0) + row["percent"], 1)
    print(f"{path.name}, threads={args.threads}: "
          f"{result['decode_tokens_per_s']:.2f} tok/s over the sampled steps (incl. a 1 s "
          f"perf attach pause in the first step); other cores {result['other_cores']:.2f}")
    for row in rows[:25]:
        print(f"  {row['percent']:5.1f}%  {row['dso']:22s} {row['symbol']}")
    print("groups:")
    for name, pct in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {pct:5.1f}%  {name}")
    out = args.out or BENCH / "results" / f"perf-{path.stem}-t{args.threads}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"file": str(path), "threads": args.threads,
                               "tokens": args.tokens, "result": result, "symbols": rows,
                               "groups": groups}, indent=2) + "\n")
    data.unlink(missing_ok=True)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
