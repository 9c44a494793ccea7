"""What turning flash attention off in the decoder costs (the price of deterministic output).

    .venv/bin/python bench/flash_attention_cost.py --model $PALIDESK_BENCH_MODELS/pg2-3b-224-gguf

Loads the same model twice in one process, decoder flash attention on (llama.cpp's CPU
default) and off (PaliDesk's setting since issue 10), and alternates them for
``--rounds`` rounds: a first task on a new image (encode + prefill + decode), a second
task on the same image (cache hit: prefill + decode). Prints medians, the ratio off / on
(the baseline is "on", measured in the same run), the compute buffer llama.cpp reserves
for each, and how busy other processes kept the machine during each measurement.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cpu_load import OtherLoad, wait_quiet  # noqa: E402

_BUFFER = re.compile(r"CPU compute buffer size =\s*([\d.]+) MiB")


class _ComputeBuffers(logging.Handler):
    """Collects llama.cpp's "compute buffer size" log lines while a model loads."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.mib: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = _BUFFER.search(record.getMessage())
        if match:
            self.mib.append(float(match[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--wait-quiet", type=float, default=60.0,
                        help="seconds to wait for other processes to go quiet before each "
                             "measurement (the machine is shared)")
    parser.add_argument("--noisy", type=float, default=0.15,
                        help="other processes' cores above which a measurement is noisy")
    args = parser.parse_args()

    from app.engine.engine import Engine, EngineConfig
    from app.engine.events import GenerationOptions
    from app.model_files.model_folder import ModelFolder

    images = sorted((ROOT / "tests" / "fixtures" / "images").glob("*.png"))
    pair = ModelFolder(args.model).resolve(args.quant)
    llama_log = logging.getLogger("palidesk.llama")
    llama_log.setLevel(logging.DEBUG)
    engines: dict[str, Engine] = {}
    buffers: dict[str, float] = {}
    for name, flag in (("on", True), ("off", False)):
        handler = _ComputeBuffers()
        llama_log.addHandler(handler)
        engine = Engine()
        engine.load(pair, EngineConfig(threads=args.threads, flash_attention=flag))
        llama_log.removeHandler(handler)
        buffers[name] = handler.mib[0] if handler.mib else float("nan")
        engine.run(images[0], "caption en", GenerationOptions(max_new_tokens=4))  # warm up
        engines[name] = engine
    llama_log.setLevel(logging.WARNING)

    options = GenerationOptions(max_new_tokens=args.tokens, stop_at_eos=False)
    rows: list[dict[str, object]] = []
    for round_ in range(args.rounds):
        for name in (("on", "off") if round_ % 2 == 0 else ("off", "on")):
            engine = engines[name]
            engine.cache.clear()
            image = images[round_ % len(images)]
            for task, prompt in (("first", "caption en"), ("second", "detect cat ; dog")):
                wait_quiet(args.noisy, timeout_s=args.wait_quiet)
                with OtherLoad() as load:
                    result = engine.run(image, prompt, options)
                t = result.timings
                rows.append({"fa": name, "round": round_, "task": task,
                             "prefill_s": t.prefill_s, "first_token_s": t.first_token_s,
                             "decode_tok_s": t.decode_tokens_per_s,
                             "other_cores": round(load.other_cores, 2)})
                print(json.dumps(rows[-1]), flush=True)
    for engine in engines.values():
        engine.close()

    clean = [r for r in rows if float(r["other_cores"]) < args.noisy]  # type: ignore[arg-type]
    used = clean if {(r["fa"], r["task"]) for r in clean} == {
        (fa, task) for fa in ("on", "off") for task in ("first", "second")} else rows
    print(f"\n{len(clean)} of {len(rows)} measurements clean (others < {args.noisy} core); "
          f"medians of {'the clean ones' if used is clean else 'all (too few clean)'}")

    def median(fa: str, task: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in used  # type: ignore[arg-type]
                                 if r["fa"] == fa and r["task"] == task)

    summary: dict[str, object] = {"compute_buffer_mib": buffers}
    print(f"compute buffer: on {buffers['on']:.1f} MiB, off {buffers['off']:.1f} MiB")
    print(f"{'':28} {'FA on':>9} {'FA off':>9} {'off/on':>7}")
    for task in ("first", "second"):
        for key in ("prefill_s", "first_token_s", "decode_tok_s"):
            on, off = median("on", task, key), median("off", task, key)
            summary[f"{task}.{key}"] = {"on": on, "off": off, "ratio": off / on}
            print(f"{task + ' task ' + key:28} {on:9.2f} {off:9.2f} {off / on:7.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
