"""Speed of PaliDesk's engine vs a bare llama.cpp loop (ceiling) and transformers (baseline).

    .venv/bin/python bench/engine_bench.py \\
        --models $PALIDESK_BENCH_MODELS/pg2-3b-224-gguf \\
        --hf $PALIDESK_BENCH_MODELS/pg2-3b-224-random \\
        --quants F16,Q8_0,Q4_K_M --threads 2 --tokens 32 --repeats 3

Models: a full-size random-weight PaliGemma 2 3B-224 (``bench/make_fullsize_random.py``),
converted and quantized with the ``palidesk`` CLI. Random weights run exactly as fast as
real ones; only speed is measured here.

What one *round* measures (rounds repeat ``--repeats`` times; every part is measured in
every round, so baseline and ours alternate and share the machine's noise):

- **ours** (per quantization; loaded fresh each round and warmed up on another image):
  a *first task* on an image with the image-embedding cache cleared (encode + prefill +
  decode) and a *second task* on the same image (cache hit, no encode), both through
  ``Engine.generate`` with ``--tokens`` new tokens and ``stop_at_eos=False``;
- **bare** (same quantization, same file): the same decode loop written with bare
  llama.cpp calls, as the ceiling: its own model and context from the same file with the
  same model/context parameters as the engine (but no abort callback), a plain token
  prefix of the same length decoded causally in one batch, then ``--tokens`` - 1
  single-token ``llama_decode`` + numpy argmax steps;
- **transformers** (the baseline users have today): the original HF checkpoint in fp32
  (``PaliGemmaForConditionalGeneration``), kept loaded in a worker process for the whole
  run; vision tower alone timed once, then greedy ``generate`` of the same number of tokens
  on the same 256 image tokens + prompt, with a streamer timing each token.

Decode tokens/s everywhere = (tokens - 1) / (time of the last token - time of the first),
i.e. the steady per-token rate after the first token. Every measurement also records how
many cores *other* processes kept busy meanwhile (``other_cores``; this machine is
shared). Medians are reported; ratios are ratios of medians and, in brackets, the median
of the per-round ratios.

A measurement during which other processes kept more than ``--noisy`` cores busy is
repeated (up to ``--retries`` times) and the cleanest try is kept; every row says whether
it is ``clean`` and carries the discarded tries. ``--wait-quiet S`` also waits up to S
seconds before each measurement until other processes are (almost) idle.

Parts can run alone: ``--parts ours,bare`` (no transformers), ``--parts transformers``,
``--skip-transformers``. Results go to ``bench/results/engine-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_models import BENCH_MODELS

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from cpu_load import OtherLoad, loadavg, wait_quiet  # noqa: E402

DEFAULT_IMAGE = ROOT / "tests/fixtures/images/shapes_320x240.png"
WARMUP_IMAGE = ROOT / "tests/fixtures/images/strokes_500x500.png"
IMAGE_TOKEN_ID = 257152


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def meminfo_gib(key: str = "MemAvailable") -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


# --- ours -----------------------------------------------------------------------------


def run_task(engine, image: Path, prompt: str, tokens: int) -> dict:
    from app.engine.events import GenerationOptions, ResultEvent

    options = GenerationOptions(max_new_tokens=tokens, stop_at_eos=False)
    result = None
    with OtherLoad() as load:
        for event in engine.generate(image, prompt, options):
            if isinstance(event, ResultEvent):
                result = event
    assert result is not None and len(result.tokens) == tokens, "generation stopped early"
    t = result.timings
    return {
        "image_encode_s": t.image_encode_s,
        "prefill_s": t.prefill_s,
        "first_token_s": t.first_token_s,
        "decode_tokens_per_s": t.decode_tokens_per_s,
        "image_cached": t.image_cached,
        "prefix_tokens": t.prefix_tokens,
        "other_cores": load.other_cores,
        "tokens": result.tokens[:8],
    }


# --- bare llama.cpp loop ---------------------------------------------------------------


class BareLoop:
    """The decode loop in bare llama.cpp calls, from the same file with the same params."""

    def __init__(self, path: Path, n_ctx: int, n_batch: int, n_ubatch: int, threads: int,
                 use_extra_bufts: bool) -> None:
        import llama_cpp

        self.llama = llama_cpp
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.use_extra_bufts = use_extra_bufts
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise RuntimeError(f"cannot load {path}")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = n_ctx, n_batch, n_ubatch
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RuntimeError("cannot create a context")
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.step = llama_cpp.llama_batch_init(1, 0, 1)
        self.prefix_batch = llama_cpp.llama_batch_init(n_ubatch, 0, 1)

    def argmax(self) -> int:
        ptr = self.llama.llama_get_logits_ith(self.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))))

    def run(self, prefix_len: int, tokens: int, logits: bool = True) -> dict:
        """``logits=False`` asks for no output during the steps (profiling only: llama.cpp
        then skips the output matmul; the argmax reads stale logits)."""
        ll = self.llama
        with OtherLoad() as load:
            start = time.perf_counter()
            ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
            batch = self.prefix_batch
            batch.n_tokens = prefix_len
            for i in range(prefix_len):
                # BOS, then ordinary vocabulary tokens: a plain causal text prefix.
                batch.token[i] = 2 if i == 0 else 1000 + (i * 37) % 50000
                batch.pos[i] = i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            batch.logits[prefix_len - 1] = 1
            if ll.llama_decode(self.ctx, batch) != 0:
                raise RuntimeError("prefix decode failed")
            prefill_s = time.perf_counter() - start
            token = self.argmax()
            first = time.perf_counter()
            step = self.step
            pos = prefix_len
            in_decode = 0.0
            for _ in range(tokens - 1):
                step.n_tokens = 1
                step.token[0] = token
                step.pos[0] = pos
                step.n_seq_id[0] = 1
                step.seq_id[0][0] = 0
                step.logits[0] = 1 if logits else 0
                t0 = time.perf_counter()
                if ll.llama_decode(self.ctx, step) != 0:
                    raise RuntimeError("decode failed")
                in_decode += time.perf_counter() - t0
                token = self.argmax() if logits else (token + 1) % 50000
                pos += 1
            end = time.perf_counter()
        return {
            "prefill_s": prefill_s,
            "first_token_s": first - start,
            "decode_tokens_per_s": (tokens - 1) / (end - first),
            "llama_decode_ms_per_token": 1000 * in_decode / (tokens - 1),
            "loop_ms_per_token": 1000 * (end - first) / (tokens - 1),
            "other_cores": load.other_cores,
        }

    def close(self) -> None:
        ll = self.llama
        ll.llama_batch_free(self.step)
        ll.llama_batch_free(self.prefix_batch)
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)


# --- transformers worker ------------------------------------------------------------------


class TransformersWorker:
    """The HF model in fp32, loaded once in a child process; JSON lines over pipes."""

    def __init__(self, hf_dir: Path, threads: int, attn: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--hf-worker", str(hf_dir),
             "--threads", str(threads), "--hf-attn", attn],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.ready = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the transformers worker died (out of memory?)")
        return json.loads(line)

    def run(self, image: Path, prompt_ids: list[int], tokens: int) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"image": str(image), "prompt_ids": prompt_ids,
                                          "tokens": tokens}) + "\n")
        return self._read()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def hf_worker_main(hf_dir: Path, threads: int, attn: str) -> int:
    """Child process: load the checkpoint in fp32, then answer timing requests."""
    out = sys.stdout
    sys.stdout = sys.stderr  # keep library chatter off the protocol pipe
    import torch
    from PIL import Image
    from transformers import PaliGemmaForConditionalGeneration
    from transformers.generation.streamers import BaseStreamer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = PaliGemmaForConditionalGeneration.from_pretrained(
        str(hf_dir), dtype=torch.float32, attn_implementation=attn)
    model.eval()
    load_s = time.perf_counter() - start
    rss = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 2**20
    side = model.config.vision_config.image_size
    n_img = (side // model.config.vision_config.patch_size) ** 2
    out.write(json.dumps({"load_s": load_s, "rss_gib": rss, "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "attn": attn}) + "\n")
    out.flush()

    class Stamps(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.calls = 0

        def put(self, value) -> None:
            self.calls += 1
            if self.calls > 1:  # the first call carries the prompt
                self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    for line in sys.stdin:
        req = json.loads(line)
        with Image.open(req["image"]) as im:
            resized = im.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        x = (np.asarray(resized, dtype=np.float32) / 255.0 - 0.5) / 0.5
        pv = torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0)
        ids = [IMAGE_TOKEN_ID] * n_img + list(req["prompt_ids"])
        input_ids = torch.tensor([ids])
        n = int(req["tokens"])
        with torch.inference_mode(), OtherLoad() as load:
            t0 = time.perf_counter()
            model.model.get_image_features(pv)
            vision_s = time.perf_counter() - t0
            stamps = Stamps()
            t0 = time.perf_counter()
            gen = model.generate(
                input_ids=input_ids, pixel_values=pv,
                attention_mask=torch.ones_like(input_ids),
                token_type_ids=torch.zeros_like(input_ids),
                max_new_tokens=n, min_new_tokens=n, do_sample=False,
                pad_token_id=0, streamer=stamps)
        times = stamps.times
        out.write(json.dumps({
            "vision_s": vision_s,
            "first_token_s": times[0] - t0,
            "decode_tokens_per_s": (len(times) - 1) / (times[-1] - times[0]),
            "generated": len(times),
            "tokens": gen[0, len(ids):len(ids) + 8].tolist(),
            "prefix_tokens": len(ids),
            "other_cores": load.other_cores,
        }) + "\n")
        out.flush()
    return 0


# --- orchestration --------------------------------------------------------------------


@dataclass
class Quant:
    name: str
    pair: object


def machine_info() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    build = {}
    marker = Path(sys.prefix) / "palidesk-llama-build.json"
    if marker.exists():
        build = json.loads(marker.read_text())
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_total_gib": round(meminfo_gib("MemTotal"), 1),
            "python": platform.python_version(), "llama_build": build}


def measure(fn, args: argparse.Namespace, label: str) -> dict:
    """Run ``fn`` until other processes stayed under ``--noisy`` cores meanwhile (at most
    1 + ``--retries`` tries); keep the cleanest try, with the discarded ones attached."""
    tries: list[dict] = []
    for _ in range(1 + args.retries):
        if args.wait_quiet:
            wait_quiet(timeout_s=args.wait_quiet)
        row = fn()
        tries.append(row)
        if row["other_cores"] <= args.noisy:
            break
        print(f"{label}: noisy (other processes used {row['other_cores']:.2f} cores), "
              "measuring again", flush=True)
    best = min(tries, key=lambda t: t["other_cores"])
    best = dict(best, clean=best["other_cores"] <= args.noisy,
                discarded=[t for t in tries if t is not best])
    return best


def tokenize(text_gguf: Path, prompts: list[str]) -> dict[str, list[int]]:
    """BOS + tokens of prompt + "\\n", exactly as Engine.prompt_tokens (vocab-only load)."""
    import llama_cpp

    from app.engine.llama_library import ensure_backend

    ensure_backend()
    mparams = llama_cpp.llama_model_default_params()
    mparams.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(text_gguf).encode(), mparams)
    vocab = llama_cpp.llama_model_get_vocab(model)
    out: dict[str, list[int]] = {}
    for prompt in prompts:
        text = (prompt + "\n").encode()
        buf = (llama_cpp.llama_token * (len(text) + 8))()
        n = llama_cpp.llama_tokenize(vocab, text, len(text), buf, len(text) + 8, False, True)
        out[prompt] = [int(llama_cpp.llama_vocab_bos(vocab)), *buf[:n]]
    llama_cpp.llama_model_free(model)
    return out


def warm_up(engine, bare: BareLoop | None, prefix_len: int) -> None:
    """Fault the model's pages in and let llama.cpp allocate (untimed)."""
    from app.engine.events import GenerationOptions

    engine.cache.clear()
    engine.run(WARMUP_IMAGE, "caption en", GenerationOptions(max_new_tokens=3,
                                                            stop_at_eos=False))
    engine.cache.clear()
    if bare is not None:
        bare.run(prefix_len, 3)


def summarize(rounds: list[dict], quants: list[str], parts: set[str]) -> dict:
    summary: dict[str, dict] = {}
    tf = [r["transformers"] for r in rounds if "transformers" in r]

    def med(rows: list[dict], key: str) -> float:
        return median([row[key] for row in rows])

    if tf:
        summary["transformers"] = {
            "vision_s": med(tf, "vision_s"),
            "first_token_s": med(tf, "first_token_s"),
            "decode_tokens_per_s": med(tf, "decode_tokens_per_s"),
            "other_cores": med(tf, "other_cores"),
            "clean": f"{sum(row.get('clean', True) for row in tf)}/{len(tf)}",
        }
    for q in quants:
        s: dict[str, float] = {}
        first = [r[q]["first"] for r in rounds if q in r and "first" in r[q]]
        second = [r[q]["second"] for r in rounds if q in r and "second" in r[q]]
        bare = [r[q]["bare"] for r in rounds if q in r and "bare" in r[q]]
        if first:
            s |= {
                "encode_s": med(first, "image_encode_s"),
                "prefill_s": med(first, "prefill_s"),
                "ttft_first_s": med(first, "first_token_s"),
                "ttft_second_s": med(second, "first_token_s"),
                "prefill_second_s": med(second, "prefill_s"),
                "decode_tps": median([row["decode_tokens_per_s"] for row in first + second]),
                "other_cores": median([row["other_cores"] for row in first + second]),
                "prefix_tokens": first[0]["prefix_tokens"],
            }
        if bare:
            s |= {
                "bare_prefill_s": med(bare, "prefill_s"),
                "bare_ttft_s": med(bare, "first_token_s"),
                "bare_decode_tps": med(bare, "decode_tokens_per_s"),
                "bare_llama_decode_ms": med(bare, "llama_decode_ms_per_token"),
                "bare_loop_ms": med(bare, "loop_ms_per_token"),
                "bare_other_cores": med(bare, "other_cores"),
            }
        rows = first + second + bare
        if rows:
            s["clean"] = f"{sum(row.get('clean', True) for row in rows)}/{len(rows)}"
        paired_bare, paired_tf_dec, paired_tf_ttft = [], [], []
        for r in rounds:
            if q not in r or "first" not in r[q]:
                continue
            ours_dec = median([r[q]["first"]["decode_tokens_per_s"],
                               r[q]["second"]["decode_tokens_per_s"]])
            if "bare" in r[q]:
                paired_bare.append(ours_dec / r[q]["bare"]["decode_tokens_per_s"])
            if "transformers" in r:
                paired_tf_dec.append(ours_dec / r["transformers"]["decode_tokens_per_s"])
                paired_tf_ttft.append(r[q]["first"]["first_token_s"]
                                      / r["transformers"]["first_token_s"])
        if first and bare:
            s["decode_ours_over_bare"] = s["decode_tps"] / s["bare_decode_tps"]
            s["decode_ours_over_bare_paired"] = median(paired_bare)
        if first and tf:
            t = summary["transformers"]
            s["decode_ours_over_tf"] = s["decode_tps"] / t["decode_tokens_per_s"]
            s["decode_ours_over_tf_paired"] = median(paired_tf_dec)
            s["ttft_ours_over_tf"] = s["ttft_first_s"] / t["first_token_s"]
            s["ttft_ours_over_tf_paired"] = median(paired_tf_ttft)
        summary[q] = s
    return summary


def print_table(summary: dict, quants: list[str]) -> None:
    def f(v: float | None, fmt: str = "{:.2f}") -> str:
        return "—" if v is None or v != v else fmt.format(v)

    print()
    print("| model | encode s | prefill s | TTFT 1st s | TTFT 2nd s | decode tok/s | "
          "bare decode tok/s | ours/bare | ours/tf decode | ours/tf TTFT | other cores | "
          "clean |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for q in quants:
        s = summary.get(q, {})
        print(f"| {q} | {f(s.get('encode_s'))} | {f(s.get('prefill_s'))} | "
              f"{f(s.get('ttft_first_s'))} | {f(s.get('ttft_second_s'))} | "
              f"{f(s.get('decode_tps'))} | {f(s.get('bare_decode_tps'))} | "
              f"{f(s.get('decode_ours_over_bare'), '{:.3f}')} "
              f"({f(s.get('decode_ours_over_bare_paired'), '{:.3f}')}) | "
              f"{f(s.get('decode_ours_over_tf'))} | {f(s.get('ttft_ours_over_tf'))} | "
              f"{f(s.get('other_cores'))} | {s.get('clean', '—')} |")
    t = summary.get("transformers")
    if t:
        print(f"| transformers fp32 | vision {f(t['vision_s'])} | — | "
              f"{f(t['first_token_s'])} | {f(t['first_token_s'])} | "
              f"{f(t['decode_tokens_per_s'])} | — | — | 1 | 1 | {f(t['other_cores'])} | "
              f"{t['clean']} |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=BENCH_MODELS / "pg2-3b-224-gguf")
    parser.add_argument("--hf", type=Path, default=BENCH_MODELS / "pg2-3b-224-random",
                        help="the HF checkpoint for the transformers baseline")
    parser.add_argument("--quants", default="F16,Q8_0,Q4_K_M")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="ours,bare,transformers")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--prompt", default="caption en", help="first task")
    parser.add_argument("--second-prompt", default="detect cat ; dog", help="second task")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each measurement wait up to S seconds for other "
                             "processes to use < 0.15 cores (this machine is shared)")
    parser.add_argument("--noisy", type=float, default=0.1, metavar="CORES",
                        help="a measurement during which other processes used more than "
                             "this many cores is repeated (see --retries)")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--hf-attn", default="eager", choices=("eager", "sdpa"),
                        help="transformers 5.24 refuses sdpa for Gemma 2: eager is what "
                             "users get")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--hf-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_worker:
        return hf_worker_main(args.hf_worker, args.threads, args.hf_attn)

    import logging

    import llama_cpp

    from app.engine.engine import Engine, EngineConfig
    from app.engine.llama_library import use_extra_buffer_types
    from app.model_files.model_folder import ModelFolder

    logging.basicConfig(level=logging.WARNING)
    parts = set(args.parts.split(","))
    if args.skip_transformers:
        parts.discard("transformers")
    quants = [q.strip().upper() for q in args.quants.split(",") if q.strip()]
    if not {"ours", "bare"} & parts:
        quants = []
    folder = ModelFolder(args.models)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or BENCH / "results" / f"engine-{stamp}.json"
    record: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "use_extra_bufts": use_extra_buffer_types(),
        "rounds": [],
    }
    print(json.dumps(record["machine"]), flush=True)

    worker = None
    if "transformers" in parts:
        avail = meminfo_gib()
        print(f"starting the transformers worker (MemAvailable {avail:.1f} GiB; fp32 3B "
              "needs ~12 GiB)", flush=True)
        worker = TransformersWorker(args.hf, args.threads, args.hf_attn)
        record["transformers_load"] = worker.ready
        print(f"transformers loaded: {worker.ready}", flush=True)

    engine = Engine()
    prompt_ids = tokenize(folder.resolve(folder.text_types()[-1]).text.path,
                          [args.prompt, args.second_prompt])
    record["prompt_ids"] = prompt_ids
    print(f"prompt ids: {prompt_ids}", flush=True)
    try:
        for r in range(args.repeats):
            row: dict = {"round": r, "loadavg_start": loadavg()}
            # Rotate the order each round so no part always runs first after a load.
            order = quants[r % len(quants):] + quants[:r % len(quants)] if quants else []
            for q in order:
                pair = folder.resolve(q)
                engine.load(pair, EngineConfig(threads=args.threads))
                assert engine.prompt_tokens(args.prompt) == prompt_ids[args.prompt]
                ctx = engine._ctx  # the same context parameters for the bare loop

                bare = None
                if "bare" in parts:
                    bare = BareLoop(pair.text.path, llama_cpp.llama_n_ctx(ctx),
                                    llama_cpp.llama_n_batch(ctx), llama_cpp.llama_n_ubatch(ctx),
                                    args.threads, use_extra_buffer_types())
                prefix_len = pair.image_tokens + len(prompt_ids[args.prompt])
                warm_up(engine, bare, prefix_len)
                res: dict = {}
                steps = []
                if "ours" in parts:
                    steps += ["first", "second"]
                if bare is not None:
                    # bare alternately before and after our two tasks
                    steps = ["bare", *steps] if r % 2 else [*steps, "bare"]
                for step in steps:
                    if step == "first":
                        def fn():
                            engine.cache.clear()
                            return run_task(engine, args.image, args.prompt, args.tokens)
                    elif step == "second":
                        def fn():
                            if not engine.cache:  # a retried first task leaves it filled
                                engine.image_rows(args.image)
                            return run_task(engine, args.image, args.second_prompt,
                                            args.tokens)
                    else:
                        def fn(bare=bare, prefix_len=prefix_len):
                            return bare.run(prefix_len, args.tokens)
                    res[step] = measure(fn, args, f"round {r} {q} {step}")
                    if step == "second":
                        assert res["second"]["image_cached"], "the second task missed the cache"
                    print(f"round {r} {q:7s} {step:6s} " + json.dumps(
                        {k: round(v, 3) if isinstance(v, float) else v
                         for k, v in res[step].items() if k not in ("tokens", "discarded")}),
                        flush=True)
                if bare is not None:
                    bare.close()
                engine.unload()
                row[q] = res
            if worker is not None:
                row["transformers"] = measure(
                    lambda: worker.run(args.image, prompt_ids[args.prompt], args.tokens),
                    args, f"round {r} transformers")
                print(f"round {r} transformers " + json.dumps(
                    {k: round(v, 3) if isinstance(v, float) else v
                     for k, v in row["transformers"].items()
                     if k not in ("tokens", "discarded")}), flush=True)
            record["rounds"].append(row)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=2) + "\n")
    finally:
        engine.unload()
        if worker is not None:
            worker.close()
    record["summary"] = summarize(record["rounds"], quants, parts)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print_table(record["summary"], quants)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
