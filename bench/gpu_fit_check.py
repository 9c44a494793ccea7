"""On an NVIDIA GPU: the fit estimate against what NVML measures, and the speed figures.

    python bench/gpu_fit_check.py --folder $PALIDESK_BENCH_MODELS/pg2-3b-224-gguf \\
        --quants F16,Q8_0,Q4_K_M

For each quantization, fully offloaded (``gpu_layers = -1``): the GPU memory this process
uses (NVML, sampled every 20 ms while it loads and captions the built-in image, minus what
it used before loading) against ``estimate(folder, quant, -1)``, with and without the
safety margin; then the speed test's figures (load, first token new/cached, decode tok/s)
on the GPU. Prints a table and writes ``bench/results/gpu-fit-<time>.json``. Run by
``bench/gpu_check.sh``; it has not run on a GPU yet (no GPU on the machines so far).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.engine.engine import Engine, EngineConfig  # noqa: E402
from app.engine.events import GenerationOptions  # noqa: E402
from app.engine.llama_library import supports_gpu_offload  # noqa: E402
from app.evaluation.peak_memory import PeakMemory  # noqa: E402
from app.evaluation.speed_test import builtin_image, measure_quant  # noqa: E402
from app.hardware import detect  # noqa: E402
from app.model_files.model_folder import ModelFolder  # noqa: E402
from app.models.fit_estimate import estimate  # noqa: E402

MIB = 1024**2


def baseline_vram() -> int:
    with PeakMemory(interval=0.02) as peak:
        time.sleep(0.1)
    return peak.vram_bytes or 0


def check(folder: ModelFolder, quant: str) -> dict[str, object]:
    before = baseline_vram()
    engine = Engine()
    with PeakMemory(interval=0.02) as peak:
        engine.load(folder.resolve(quant), EngineConfig(gpu_layers=-1))
        engine.run(str(builtin_image()), "caption en", GenerationOptions(max_new_tokens=16))
        engine.close()
    used = (peak.vram_bytes or 0) - before
    b = estimate(folder, quant, -1)
    without_margin = b.total_gpu - b.margin_gpu
    speed = measure_quant(folder, quant, tokens=64, gpu_layers=-1)
    return {
        "quant": quant, "measured_vram_bytes": used, "estimate_total_gpu": b.total_gpu,
        "estimate_without_margin": without_margin, "margin_gpu": b.margin_gpu,
        "error_without_margin": (without_margin - used) / used if used else None,
        "estimate_covers_measured": b.total_gpu >= used,
        "peak_rss_bytes": peak.rss_bytes,
        "decode_tokens_per_s": speed.decode_tokens_per_s if speed else None,
        "first_token_s": speed.first_token_s if speed else None,
        "first_token_cached_s": speed.first_token_cached_s if speed else None,
        "load_s": speed.load_s if speed else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--quants", default="F16,Q8_0,Q4_K_M")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    hardware = detect()
    if not hardware.gpus or not supports_gpu_offload():
        print(f"no usable GPU: {hardware.summary()} (offload built: {supports_gpu_offload()})")
        return 2
    folder = ModelFolder(args.folder)
    rows = [check(folder, q.strip().upper()) for q in args.quants.split(",") if q.strip()]
    print(f"{'quant':<8}{'NVML MiB':>10}{'est. MiB':>10}{'no margin':>10}{'error':>8}"
          f"{'tok/s':>8}{'TTFT s':>8}{'cached s':>9}")
    for r in rows:
        error = r["error_without_margin"]
        print(f"{r['quant']:<8}{r['measured_vram_bytes'] / MIB:>10.0f}"
              f"{r['estimate_total_gpu'] / MIB:>10.0f}{r['estimate_without_margin'] / MIB:>10.0f}"
              f"{'' if error is None else f'{error:+.1%}':>8}"
              f"{r['decode_tokens_per_s'] or 0:>8.1f}{r['first_token_s'] or 0:>8.2f}"
              f"{r['first_token_cached_s'] or 0:>9.2f}")
    out = args.out or ROOT / "bench" / "results" / f"gpu-fit-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": hardware.summary(), "python": platform.python_version(),
                               "gpus": [g.name for g in hardware.gpus], "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
