"""Test speed on this machine: each quantization on a built-in image, figures kept.

Per quantization: load it (timed), caption the built-in image once with the image new
(first-token time), decode ``tokens`` tokens without stopping at the end marker (decode
tokens/s), then once more with the image's embedding cached. Peak RAM (and VRAM through
NVML) is sampled throughout. The figures go to the model folder's speed.json. GPU
layers are what the automatic choice would use, so a GPU build is measured on the GPU.
"""

from __future__ import annotations

import time
from pathlib import Path

from app.engine.context_size import engine_config
from app.engine.engine import Engine
from app.engine.events import GenerationOptions, ResultEvent
from app.evaluation.peak_memory import PeakMemory
from app.model_files.model_folder import ModelFolder
from app.models.measured_speed import QuantSpeed, record_speed
from app.progress import CancelFlag, ProgressCallback, ProgressEvent, no_progress
from app.resources import resource_path

SPEED_TEST_PROMPT = "caption en"


def builtin_image() -> Path:
    return resource_path("verify-image.png")


def measure_quant(folder: ModelFolder, quant: str, tokens: int = 64,
                  threads: int | None = None, gpu_layers: int | None = None,
                  cancel: CancelFlag | None = None, image: Path | None = None) -> QuantSpeed | None:
    """Measure one quantization; None if cancelled before the figures were complete."""
    cancel = cancel or CancelFlag()
    image = image or builtin_image()
    if gpu_layers is None:  # the automatic choice, as every face makes it
        from app.models.fit_choice import auto_gpu_layers

        gpu_layers = auto_gpu_layers(folder, quant)
    engine = Engine()
    with PeakMemory() as peak:
        started = time.perf_counter()
        engine.load(folder.resolve(quant), engine_config(gpu_layers, threads, tokens))
        load_s = time.perf_counter() - started
        try:
            first = _generate(engine, image, tokens, cancel)
            again = _generate(engine, image, 1, cancel) if first is not None else None
        finally:
            engine.close()
    if first is None or again is None:
        return None
    t = first.timings
    return QuantSpeed(decode_tokens_per_s=t.decode_tokens_per_s or None,
                      first_token_s=t.first_token_s,
                      first_token_cached_s=again.timings.first_token_s, load_s=load_s,
                      peak_rss_bytes=peak.rss_bytes, peak_vram_bytes=peak.vram_bytes,
                      gpu_layers=engine.config.gpu_layers, images=1)


def _generate(engine: Engine, image: Path, tokens: int, cancel: CancelFlag) -> ResultEvent | None:
    options = GenerationOptions(max_new_tokens=tokens, stop_at_eos=False)
    for event in engine.generate(str(image), SPEED_TEST_PROMPT, options, cancel):
        if isinstance(event, ResultEvent):
            return None if event.stop_reason == "cancelled" else event
    return None


def run_speed_test(model_dir: Path, quants: list[str] | None = None, tokens: int = 64,
                   progress: ProgressCallback = no_progress, cancel: CancelFlag | None = None,
                   threads: int | None = None) -> dict[str, QuantSpeed]:
    """Measure ``quants`` (default: every installed one) and store the figures."""
    cancel = cancel or CancelFlag()
    folder = ModelFolder(model_dir)
    quants = [q.upper() for q in quants] if quants else folder.text_types()
    results: dict[str, QuantSpeed] = {}
    for index, quant in enumerate(quants):
        if cancel.cancelled:
            break
        progress(ProgressEvent("speed", index, len(quants), f"measuring {quant}"))
        speed = measure_quant(folder, quant, tokens, threads, cancel=cancel)
        if speed is None:
            break
        results[quant] = speed
        try:
            record_speed(folder.path, quant, speed)
            kept = ""
        except OSError:  # a read-only model folder: the figures are shown, not kept
            kept = " (not kept: the model folder cannot be written)"
        progress(ProgressEvent("speed", index + 1, len(quants), f"{quant} done{kept}"))
    return results
