"""The engine's per-task thread choice under contention, against the fixed 2-thread loop.

    .venv/bin/python bench/contention_engine.py --model $PALIDESK_BENCH_MODELS/pg2-3b-224-gguf

Runs the real Engine (Q4_K_M, 2 threads) three ways in one process: idle machine; a busy
process of our own holding one core with the fallback on (the default); and the same
contention with the fallback off (the fixed 2-thread baseline). Prints decode tokens/s
and the ratio fallback / fixed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()

    from app.engine import decode_threads
    from app.engine.engine import Engine, EngineConfig
    from app.engine.events import GenerationOptions
    from app.model_files.model_folder import ModelFolder

    image = ROOT / "resources" / "verify-image.png"
    engine = Engine()
    engine.load(ModelFolder(args.model).resolve(args.quant), EngineConfig(threads=2))
    options = GenerationOptions(max_new_tokens=args.tokens, stop_at_eos=False)
    engine.run(image, "caption en", GenerationOptions(max_new_tokens=4))  # warm up

    def decode_rate() -> float:
        return engine.run(image, "caption en", options).timings.decode_tokens_per_s

    def fixed_rate() -> float:
        saved = decode_threads.TRIAL_STEPS
        decode_threads.TRIAL_STEPS = 10**9  # never leave the 2-thread trial: fixed loop
        try:
            return decode_rate()
        finally:
            decode_threads.TRIAL_STEPS = saved

    results = {"idle, chosen per task": decode_rate(), "idle, fixed 2 threads": fixed_rate()}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        results["busy core, chosen per task"] = decode_rate()
        results["busy core, fixed 2 threads"] = fixed_rate()
    finally:
        hog.kill()
        hog.wait()
    engine.close()
    for name, rate in results.items():
        print(f"{name:<28} {rate:6.2f} tokens/s")
    for state in ("idle", "busy core"):
        fixed = results[f"{state}, fixed 2 threads"]
        chosen = results[f"{state}, chosen per task"]
        print(f"ratio chosen / fixed, {state}: {chosen / fixed:.2f}" if fixed else "fixed: 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
