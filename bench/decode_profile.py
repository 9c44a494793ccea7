"""Why decode runs below the memory-bandwidth bound: controlled experiments.

    .venv/bin/python bench/decode_profile.py --quant Q4_K_M --experiments all

Each experiment alternates its variants (A B A B ...) on the same loaded model, so that
drift and other people's load hit both alike; medians of ``--repeats`` runs, with the
cores other processes used during each run (``other_cores``). Experiments:

- ``threads``: the bare decode loop and a ~260-token prefill with 1 and 2 threads
  (``llama_set_n_threads`` on one context: n_threads is used for single-token batches,
  n_threads_batch for longer ones).
- ``lmhead``: decode steps that request logits vs steps that request none. Without an
  output row llama.cpp skips the tied 257,216-row output matmul (and the softcap), so the
  difference is the per-token cost of the LM head.
- ``abort``: the bare loop with and without a Python (ctypes) abort callback, which is what
  ``Engine`` installs: ggml calls it after every graph node, on thread 0, while the other
  threads wait at the barrier.
- ``engine``: ``Engine.generate`` with ``llama_decode`` wrapped by a timer: per-token time
  inside llama_decode vs the rest (Python: argmax, piece, UTF-8, events); and the same with
  the engine's abort callback removed.
- ``nodes``: the number of graph nodes one decode step computes (via the eval callback).
- ``nodetime``: wall time per graph node of decode steps, grouped (LM head matmul, each
  layer matmul kind, attention, final softcap, norms), for each ``--threads-list`` value.
- ``bytes``: weight bytes per type read per token (from the GGUF header) and the implied
  effective read rate at the measured speed.

Results go to ``bench/results/profile-<quant>-<time>.json``. For a function-level profile
run ``bench/perf_decode.sh`` (Linux ``perf``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import statistics
import sys
import time
from pathlib import Path

from bench_models import BENCH_MODELS

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402
from cpu_load import OtherLoad, wait_quiet  # noqa: E402
from engine_bench import DEFAULT_IMAGE, BareLoop  # noqa: E402

from app.engine.engine import Engine, EngineConfig  # noqa: E402
from app.engine.events import GenerationOptions, ResultEvent  # noqa: E402
from app.engine.llama_library import ensure_backend, use_extra_buffer_types  # noqa: E402
from app.model_files.model_folder import ModelFolder  # noqa: E402


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, rows in runs.items():
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
        out[name] = {k: round(med([r[k] for r in rows]), 4) for k in keys}
        out[name]["n"] = len(rows)
    return out


def alternate(variants: dict[str, callable], repeats: int, quiet: float) -> dict:
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for r in range(repeats):
        names = list(variants)
        if r % 2:
            names.reverse()
        for name in names:
            if quiet:
                wait_quiet(timeout_s=quiet)
            row = variants[name]()
            runs[name].append(row)
            print(f"  {name:24s} " + json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                                 for k, v in row.items()}), flush=True)
    summary = summarize(runs)
    for name, s in summary.items():
        print(f"  median {name:17s} " + json.dumps(s), flush=True)
    return {"runs": runs, "median": summary}


# --- experiments ----------------------------------------------------------------------


def exp_threads(bare: BareLoop, prefix: int, tokens: int, repeats: int, quiet: float,
                threads: list[int]) -> dict:
    def variant(n: int):
        def run() -> dict:
            llama_cpp.llama_set_n_threads(bare.ctx, n, n)
            return bare.run(prefix, tokens)
        return run

    result = alternate({f"threads={n}": variant(n) for n in threads}, repeats, quiet)
    llama_cpp.llama_set_n_threads(bare.ctx, max(threads), max(threads))
    return result


def exp_lmhead(bare: BareLoop, prefix: int, tokens: int, repeats: int, quiet: float) -> dict:
    result = alternate({
        "logits": lambda: bare.run(prefix, tokens, logits=True),
        "no_logits": lambda: bare.run(prefix, tokens, logits=False),
    }, repeats, quiet)
    m = result["median"]
    with_ms = m["logits"]["llama_decode_ms_per_token"]
    without_ms = m["no_logits"]["llama_decode_ms_per_token"]
    result["lm_head_ms_per_token"] = round(with_ms - without_ms, 2)
    result["lm_head_share"] = round((with_ms - without_ms) / with_ms, 3)
    print(f"  LM head: {with_ms - without_ms:.1f} ms of {with_ms:.1f} ms per token "
          f"({(with_ms - without_ms) / with_ms:.1%})", flush=True)
    return result


def exp_abort(bare: BareLoop, prefix: int, tokens: int, repeats: int, quiet: float) -> dict:
    flag = {"cancelled": False}
    callback = llama_cpp.ggml_abort_callback(lambda _data: flag["cancelled"])
    calls = {"n": 0}

    def counting(_data) -> bool:
        calls["n"] += 1
        return False

    counting_cb = llama_cpp.ggml_abort_callback(counting)

    def with_cb() -> dict:
        llama_cpp.llama_set_abort_callback(bare.ctx, callback, None)
        try:
            return bare.run(prefix, tokens)
        finally:
            llama_cpp.llama_set_abort_callback(bare.ctx, llama_cpp.ggml_abort_callback(), None)

    result = alternate({"no_callback": lambda: bare.run(prefix, tokens),
                        "python_callback": with_cb}, repeats, quiet)
    # how often ggml calls it per decode step
    llama_cpp.llama_set_abort_callback(bare.ctx, counting_cb, None)
    bare.run(prefix, 2)
    calls["n"] = 0
    bare.run(prefix, 2)  # prefix batch + 1 step
    per_run = calls["n"]
    calls["n"] = 0
    bare.run(prefix, 5)  # prefix batch + 4 steps
    llama_cpp.llama_set_abort_callback(bare.ctx, llama_cpp.ggml_abort_callback(), None)
    result["callback_calls_per_step"] = (calls["n"] - per_run) / 3
    print(f"  abort callback calls per decode step: {result['callback_calls_per_step']}")
    return result


def exp_nodes(bare: BareLoop, prefix: int) -> dict:
    counts = {"ask": 0}

    def cb(_tensor, ask, _data) -> bool:
        if ask:
            counts["ask"] += 1
        return False

    # The eval callback is a context parameter: make a second context on the same model.
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 1024, 512, 512
    params.n_threads = params.n_threads_batch = 1
    keep = llama_cpp.ggml_backend_sched_eval_callback(cb)
    params.cb_eval = keep
    ctx = llama_cpp.llama_init_from_model(bare.model, params)
    batch = llama_cpp.llama_batch_init(1, 0, 1)
    try:
        n = {}
        for pos in range(3):
            counts["ask"] = 0
            batch.n_tokens = 1
            batch.token[0] = 1000 + pos
            batch.pos[0] = pos
            batch.n_seq_id[0] = 1
            batch.seq_id[0][0] = 0
            batch.logits[0] = 1
            llama_cpp.llama_decode(ctx, batch)
            n[pos] = counts["ask"]
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    print(f"  graph nodes per decode step: {n[2]}", flush=True)
    return {"nodes_per_step": n[2]}


def _ggml_base():
    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_get_name.restype = ctypes.c_void_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_op_desc.restype = ctypes.c_char_p
    lib.ggml_op_desc.argtypes = [ctypes.c_void_p]
    return lib


# struct ggml_tensor: src[0] at byte 152 (after type, buffer, ne[4], nb[4], op,
# op_params[16], flags); checked at run time against ggml_get_name (name at byte 256).
_SRC0_OFFSET, _NAME_OFFSET = 152, 256
_NO_OPS = {"NONE", "VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"}


def _category(op: str, name: str, src0: str) -> str:
    if op == "MUL_MAT":
        if src0 == "token_embd.weight":
            return "matmul LM head (token_embd)"
        part = src0.split(".")[2] if src0.startswith("blk.") else src0
        return f"matmul {part}"
    if name in ("result_output",) or op == "TANH" or (op == "SCALE" and name.startswith("node_")
                                                       and "Qcur" not in src0):
        return "final softcap (scale, tanh, scale)"
    if op in ("RMS_NORM", "MUL", "ADD"):
        return "norms / residual adds"
    return op.lower()


def exp_nodetime(bare: BareLoop, threads: int, steps: int, prefix: int) -> dict:
    """Time every graph node of single-token decode steps (eval callback on every node:
    each node then runs as its own graph, so small nodes carry ~10-30 us of overhead)."""
    lib = _ggml_base()
    state = {"last": 0.0, "rec": False}
    per_cat: dict[str, float] = {}
    cat_of: dict[int, str] = {}

    def cb(t, ask, _data) -> bool:
        if ask:
            if t not in cat_of:
                assert lib.ggml_get_name(t) - t == _NAME_OFFSET, "ggml_tensor layout changed"
                op = lib.ggml_op_desc(t).decode()
                name = ctypes.string_at(t + _NAME_OFFSET).decode(errors="replace")
                src = ctypes.c_void_p.from_address(t + _SRC0_OFFSET).value
                src0 = ctypes.string_at(src + _NAME_OFFSET).decode(errors="replace") \
                    if src else ""
                cat_of[t] = "" if op in _NO_OPS else _category(op, name, src0)
            return bool(cat_of[t])
        now = time.perf_counter()
        if state["rec"] and cat_of.get(t):
            per_cat[cat_of[t]] = per_cat.get(cat_of[t], 0.0) + now - state["last"]
        state["last"] = now
        return True

    keep = llama_cpp.ggml_backend_sched_eval_callback(cb)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 1024, 512, 512
    params.n_threads = params.n_threads_batch = threads
    params.cb_eval = keep
    ctx = llama_cpp.llama_init_from_model(bare.model, params)
    batch = llama_cpp.llama_batch_init(1, 0, 1)
    try:
        wall = 0.0
        for pos in range(prefix + steps):
            batch.n_tokens = 1
            batch.token[0] = 1000 + pos % 5000
            batch.pos[0] = pos
            batch.n_seq_id[0] = 1
            batch.seq_id[0][0] = 0
            batch.logits[0] = 1
            state["rec"] = pos >= prefix
            cat_of.clear()  # graph nodes may be reallocated between steps
            t0 = time.perf_counter()
            state["last"] = t0
            llama_cpp.llama_decode(ctx, batch)
            if pos >= prefix:
                wall += time.perf_counter() - t0
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    ms = {k: round(1000 * v / steps, 2) for k, v in sorted(per_cat.items(), key=lambda kv: -kv[1])}
    total = sum(ms.values())
    print(f"  threads={threads}: {1000 * wall / steps:.1f} ms per step with per-node sync "
          f"(sum of nodes {total:.1f} ms)")
    for k, v in ms.items():
        print(f"    {v:7.2f} ms  {v / total:6.1%}  {k}")
    return {"threads": threads, "ms_per_step_with_sync": round(1000 * wall / steps, 2),
            "ms_per_category": ms}


def exp_engine(engine: Engine, image: Path, tokens: int, repeats: int, quiet: float) -> dict:
    real_decode = llama_cpp.llama_decode
    spent = {"s": 0.0, "n": 0}

    def timed_decode(ctx, batch):
        t0 = time.perf_counter()
        status = real_decode(ctx, batch)
        if batch.n_tokens == 1:
            spent["s"] += time.perf_counter() - t0
            spent["n"] += 1
        return status

    null_cb = llama_cpp.ggml_abort_callback()

    def run(remove_callback: bool) -> dict:
        if remove_callback:
            llama_cpp.llama_set_abort_callback(engine._ctx, null_cb, None)
        else:
            llama_cpp.llama_set_abort_callback(engine._ctx, engine._abort_cb, None)
        spent["s"], spent["n"] = 0.0, 0
        llama_cpp.llama_decode = timed_decode  # the engine calls llama_cpp.llama_decode
        try:
            with OtherLoad() as load:
                result = None
                for event in engine.generate(image, "caption en",
                                             GenerationOptions(max_new_tokens=tokens,
                                                               stop_at_eos=False)):
                    if isinstance(event, ResultEvent):
                        result = event
        finally:
            llama_cpp.llama_decode = real_decode
            llama_cpp.llama_set_abort_callback(engine._ctx, engine._abort_cb, None)
        t = result.timings
        per_token_ms = 1000 * t.decode_s / (len(result.tokens) - 1)
        in_decode_ms = 1000 * spent["s"] / spent["n"]
        return {"decode_tokens_per_s": t.decode_tokens_per_s, "ms_per_token": per_token_ms,
                "llama_decode_ms": in_decode_ms, "python_ms": per_token_ms - in_decode_ms,
                "other_cores": load.other_cores}

    engine.image_rows(image)  # cached: only decode differs
    return alternate({"engine": lambda: run(False),
                      "engine_no_abort_cb": lambda: run(True)}, repeats, quiet)


def exp_bytes(pair, tps: float | None) -> dict:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    by_type: dict[str, float] = {}
    lm_head = 0.0
    for name, t in pair.text.tensors.items():
        qt = GGMLQuantizationType(t.ggml_type)
        block, size = GGML_QUANT_SIZES[qt]
        nbytes = math.prod(t.shape) // block * size
        by_type[qt.name] = by_type.get(qt.name, 0) + nbytes
        if name == "token_embd.weight":
            lm_head = nbytes
            lm_type = qt.name
    total = sum(by_type.values())
    out = {"weight_bytes_per_token": total, "by_type_mib": {k: round(v / 2**20, 1)
                                                           for k, v in by_type.items()},
           "lm_head_bytes": lm_head, "lm_head_type": lm_type,
           "lm_head_share_of_bytes": round(lm_head / total, 3)}
    if tps:
        out["effective_gbps_at"] = {"tokens_per_s": tps, "gbps": round(total * tps / 1e9, 2)}
    print(f"  bytes/token {total / 1e9:.3f} GB; token_embd ({lm_type}) {lm_head / 1e9:.3f} GB "
          f"= {lm_head / total:.1%}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=BENCH_MODELS / "pg2-3b-224-gguf")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--text-file", type=Path,
                        help="another text GGUF of the same model (e.g. other token_embd type)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threads-list", default="1,2")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--prefix", type=int, default=260)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--experiments", default="all",
                        help="comma list of threads,lmhead,abort,engine,nodes,nodetime,bytes or "
                             "all")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    exps = {"threads", "lmhead", "abort", "engine", "nodes", "bytes"} \
        if args.experiments == "all" else set(args.experiments.split(","))

    ensure_backend()
    pair = ModelFolder(args.models).resolve(args.quant)
    path = args.text_file or pair.text.path
    record: dict = {"quant": args.quant, "file": str(path), "threads": args.threads,
                    "tokens": args.tokens, "prefix": args.prefix,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join(sys.argv)}
    bare = BareLoop(path, 1024, 512, 512, args.threads, use_extra_buffer_types())
    bare.run(args.prefix, 3)  # warm up
    try:
        if "nodes" in exps:
            print("nodes:", flush=True)
            record["nodes"] = exp_nodes(bare, args.prefix)
        if "nodetime" in exps:
            print("nodetime:", flush=True)
            record["nodetime"] = []
            for n in [int(x) for x in args.threads_list.split(",")]:
                if args.wait_quiet:
                    wait_quiet(timeout_s=args.wait_quiet)
                with OtherLoad() as load:
                    row = exp_nodetime(bare, n, args.tokens, 8)
                row["other_cores"] = round(load.other_cores, 3)
                print(f"    other cores {row['other_cores']}")
                record["nodetime"].append(row)
        if "threads" in exps:
            print("threads:", flush=True)
            record["threads_exp"] = exp_threads(
                bare, args.prefix, args.tokens, args.repeats, args.wait_quiet,
                [int(x) for x in args.threads_list.split(",")])
        if "lmhead" in exps:
            print("lmhead:", flush=True)
            record["lmhead"] = exp_lmhead(bare, args.prefix, args.tokens, args.repeats,
                                          args.wait_quiet)
        if "abort" in exps:
            print("abort:", flush=True)
            record["abort"] = exp_abort(bare, args.prefix, args.tokens, args.repeats,
                                        args.wait_quiet)
    finally:
        bare.close()
    if "engine" in exps and args.text_file is None:
        print("engine:", flush=True)
        engine = Engine()
        engine.load(pair, EngineConfig(threads=args.threads))
        try:
            engine.run(DEFAULT_IMAGE, "caption en", GenerationOptions(max_new_tokens=2))
            record["engine"] = exp_engine(engine, DEFAULT_IMAGE, args.tokens, args.repeats,
                                          args.wait_quiet)
        finally:
            engine.unload()
    if "bytes" in exps:
        print("bytes:", flush=True)
        tps = None
        if "lmhead" in record:
            tps = record["lmhead"]["median"]["logits"]["decode_tokens_per_s"]
        from app.model_files.gguf_header import read_gguf_header
        header_pair = pair if args.text_file is None else type(pair)(
            pair.folder, pair.quant, read_gguf_header(path), pair.vision)
        record["bytes"] = exp_bytes(header_pair, tps)
    out = args.out or BENCH / "results" / (
        f"profile-{args.quant.lower()}-t{args.threads}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
