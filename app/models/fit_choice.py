"""Which quantization to run and how many layers go to the GPU, from the memory
estimate (``app.models.fit_estimate``), this machine's hardware and measured speeds: the
policy. ``app.session.load_plan`` applies it for every face.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.errors import CatalogError
from app.hardware import GpuInfo, HardwareReport, format_gb
from app.model_files.model_folder import ModelFolder
from app.models.catalog import QUANTS, CatalogEntry
from app.models.decode_speed import SpeedFigure, bytes_per_token, cpu_speeds
from app.models.fit_estimate import (
    ContextNeeds,
    MemoryBreakdown,
    ModelLayout,
    ModelSource,
    estimate_layout,
    layout_for,
)

# On the CPU PaliDesk uses at most this share of the available RAM: the rest stays for
# the system, the browser and whatever else the user runs beside it.
CPU_RAM_SHARE = 0.8
# On the CPU, Q8_0 is chosen when it decodes at least this fast here, else Q4_K_M: the
# choice experienced llama.cpp users make (Q8_0 is close to F16 in quality; Q4_K_M reads
# ~40 % of its bytes per token and is the smallest commonly considered near-lossless).
CPU_TARGET_TOKENS_PER_S = 8.0
CPU_PREFERRED = ("Q8_0", "Q4_K_M")
# Partial offload prefers quality, but only while at least this share of the layers
# runs on the GPU: below it the CPU part dominates the time and a smaller file wins.
MIN_OFFLOAD_SHARE = 0.5
# Quality order for choosing: F32 only when a folder has it; BF16 ranks with F16 but
# after it (parity with the reference was measured at F16).
QUALITY = ("F32", *QUANTS)


Device = Literal["gpu", "partial", "cpu", "none"]


@dataclass(frozen=True)
class FitChoice:
    """What to load: ``gpu_layers`` as EngineConfig takes it (-1 all, 0 CPU)."""

    quant: str
    gpu_layers: int
    device: Device
    breakdown: MemoryBreakdown
    sentence: str
    # Decode speed on the CPU per candidate quantization (measured or estimated).
    speeds: dict[str, SpeedFigure] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return self.device != "none"



# --- the choice -----------------------------------------------------------------------


def candidate_quants(source: ModelSource, available: Iterable[str] | None = None) -> list[str]:
    """Quantizations to consider, best first: ``available``, else what a folder holds,
    else every catalog quantization (BF16 left out: it is F16's size and quality)."""
    if available is None:
        if isinstance(source, CatalogEntry):
            available = [q for q in QUANTS if q != "BF16"]
        else:
            folder = source if isinstance(source, ModelFolder) else ModelFolder(Path(source))
            available = folder.text_types()
    wanted = {q.upper() for q in available}
    quants = [q for q in QUALITY if q in wanted]
    if not quants:
        raise CatalogError(
            "There is no text model to choose from: convert the checkpoint first, or name "
            f"one of {', '.join(QUANTS)}."
        )
    return quants


def _fits(b: MemoryBreakdown, gpu: GpuInfo | None, ram: int) -> bool:
    return b.total_cpu <= ram and (gpu is None or b.total_gpu <= gpu.free_bytes)


def _most_layers(layout: ModelLayout, gpu: GpuInfo, ram: int,
                 context: ContextNeeds) -> MemoryBreakdown | None:
    """The partial offload with the most layers that fits (None if not even one does)."""
    for g in range(layout.gpu_layer_count - 1, 0, -1):
        b = estimate_layout(layout, g, context)
        if _fits(b, gpu, ram):
            return b
    return None


def choose(
    source: ModelSource,
    hardware: HardwareReport,
    context: ContextNeeds | None = None,
    available_quants: Iterable[str] | None = None,
    measured: Mapping[str, float] | None = None,
) -> FitChoice:
    """The best quantization entirely on the GPU; else the best partial offload; else on
    the CPU Q8_0 or Q4_K_M by decode speed (``cpu_choice``); else a "too large" answer.

    ``measured``: decode tokens/s measured on this machine per quantization; by default
    what a model folder's speed.json holds for this machine.
    """
    quants = candidate_quants(source, available_quants)
    layouts = [layout_for(source, q) for q in quants]
    context = context or ContextNeeds(layouts[0].vision.patches)
    ram = ram_budget(hardware)
    gpu = hardware.best_gpu() if hardware.gpu_offload_supported else None

    if gpu is not None:
        for layout in layouts:
            b = estimate_layout(layout, -1, context)
            if _fits(b, gpu, ram):
                spare = gpu.free_bytes - b.total_gpu
                return FitChoice(layout.quant, -1, "gpu", b, (
                    f"{layout.quant} fits in {format_gb(gpu.free_bytes)} free of "
                    f"{format_gb(gpu.total_bytes)} on {gpu.name} with {format_gb(spare)} "
                    "to spare."))
        partial = _best_partial(layouts, gpu, ram, context)
        if partial is not None:
            layout, b = partial
            return FitChoice(layout.quant, b.gpu_layers, "partial", b, (
                f"{layout.quant} does not fit entirely in the {format_gb(gpu.free_bytes)} "
                f"free on {gpu.name}: {b.gpu_layers} of {b.layer_count} layers run there "
                f"({format_gb(b.total_gpu)}) and the rest on the CPU "
                f"({format_gb(b.total_cpu)} of RAM)."))

    return cpu_choice(layouts, context, ram, _cpu_reason(hardware, gpu),
                      measured if measured is not None else measured_speeds(source), gpu,
                      hardware.system.ram_available_bytes)


def ram_budget(hardware: HardwareReport) -> int:
    """The RAM PaliDesk lets a model use: ``CPU_RAM_SHARE`` of what is available."""
    return int(hardware.system.ram_available_bytes * CPU_RAM_SHARE)


def measured_speeds(source: ModelSource) -> dict[str, float]:
    """Decode tokens/s measured on this machine, from a model folder's speed.json."""
    if isinstance(source, CatalogEntry):
        return {}
    from app.models.measured_speed import speeds_here

    path = source.path if isinstance(source, ModelFolder) else Path(source)
    return {q: s.decode_tokens_per_s for q, s in speeds_here(path).items()
            if s.decode_tokens_per_s}


def layout_speeds(layouts: Iterable[ModelLayout],
                  measured: Mapping[str, float] | None = None) -> dict[str, SpeedFigure]:
    """Decode speed on the CPU per layout's quantization (measured, else estimated)."""
    per_token = {layout.quant: _per_token(layout) for layout in layouts}
    return cpu_speeds(per_token, measured)


def _cpu_pick(fitting: list[ModelLayout], speeds: Mapping[str, SpeedFigure]) -> ModelLayout:
    """Q8_0 if fast enough, else Q4_K_M; without either, the best quality that is fast
    enough, else the best quality. ``fitting`` is in quality order."""
    by_quant = {layout.quant: layout for layout in fitting}
    q8, q4 = (by_quant.get(q) for q in CPU_PREFERRED)
    fast = [layout for layout in fitting
            if speeds[layout.quant].tokens_per_s >= CPU_TARGET_TOKENS_PER_S]
    if q8 is not None and (q8 in fast or q4 is None):
        return q8
    if q4 is not None:
        return q4
    return fast[0] if fast else fitting[0]


def cpu_choice(layouts: list[ModelLayout], context: ContextNeeds, ram: int, reason: str,
               measured: Mapping[str, float], gpu: GpuInfo | None = None,
               ram_available: int | None = None) -> FitChoice:
    """The CPU choice among ``layouts`` (quality order) within ``ram`` bytes, saying why."""
    available = ram if ram_available is None else ram_available
    budget = (f"{format_gb(ram)} PaliDesk may use ({CPU_RAM_SHARE:.0%} of the "
              f"{format_gb(available)} available)")
    estimates = layout_speeds(layouts)
    speeds = layout_speeds(layouts, measured)
    fitting = [layout for layout in layouts
               if _fits(estimate_layout(layout, 0, context), None, ram)]
    if not fitting:
        smallest = layouts[-1]
        b = estimate_layout(smallest, 0, context)
        on_gpu = f" and {gpu.name} has {format_gb(gpu.free_bytes)} free" if gpu else ""
        return FitChoice(smallest.quant, 0, "none", b, (
            f"{smallest.name} is too large for this machine: even {smallest.quant} needs "
            f"{format_gb(b.total_cpu)} of RAM, more than the {budget}{on_gpu}."), speeds)
    chosen = _cpu_pick(fitting, speeds)
    b = estimate_layout(chosen, 0, context)
    why = _cpu_why(chosen, fitting, speeds)
    sentence = (f"{reason}, so {chosen.quant} runs on the CPU: {why} It needs "
                f"{format_gb(b.total_cpu)} of the {budget}.")
    by_estimate = _cpu_pick(fitting, estimates)
    if measured and by_estimate.quant != chosen.quant:
        sentence += (f" Measured speeds here changed the choice from {by_estimate.quant} "
                     f"(estimated {estimates[by_estimate.quant].tokens_per_s:.0f} tok/s, "
                     f"{_measured_or_not(by_estimate.quant, speeds)}).")
    return FitChoice(chosen.quant, 0, "cpu", b, sentence, speeds)


def _measured_or_not(quant: str, speeds: Mapping[str, SpeedFigure]) -> str:
    figure = speeds[quant]
    if figure.source == "measured":
        return f"measured {figure.tokens_per_s:.1f}"
    return f"now {figure.tokens_per_s:.1f} from the measured bandwidth"


def _cpu_why(chosen: ModelLayout, fitting: list[ModelLayout],
             speeds: Mapping[str, SpeedFigure]) -> str:
    """Why this file: decode speed on a CPU is set by the bytes it reads per token."""
    figure = speeds[chosen.quant]
    by_quant = {layout.quant: layout for layout in fitting}
    speed = (f"{figure.tokens_per_s:.1f} tokens/s measured here" if figure.source == "measured"
             else f"about {figure.tokens_per_s:.0f} tokens/s estimated")
    if chosen.quant == "Q8_0":
        return f"close to F16 in quality and fast enough here ({speed})."
    if chosen.quant == "Q4_K_M":
        if "Q8_0" in by_quant:
            q8 = speeds["Q8_0"]
            return (f"a CPU's decode speed is set by the bytes read per token: Q4_K_M reads "
                    f"{format_gb(_per_token(chosen))} per token ({speed}), Q8_0 "
                    f"{format_gb(_per_token(by_quant['Q8_0']))} ({q8.tokens_per_s:.1f} "
                    f"tokens/s {q8.source}, under {CPU_TARGET_TOKENS_PER_S:.0f}).")
        return (f"Q8_0 is not installed or does not fit, and Q4_K_M keeps most of its "
                f"quality ({speed}).")
    if len(fitting) == 1:
        return f"the only quantization that fits ({speed})."
    return f"neither Q8_0 nor Q4_K_M is installed and fits; this one gives {speed}."


def _per_token(layout: ModelLayout) -> int:
    return bytes_per_token(layout.text.layer_bytes, layout.text.token_embd_bytes,
                           layout.text.output_norm_bytes)


def _best_partial(layouts: list[ModelLayout], gpu: GpuInfo, ram: int,
                  context: ContextNeeds) -> tuple[ModelLayout, MemoryBreakdown] | None:
    found = []
    for layout in layouts:
        b = _most_layers(layout, gpu, ram, context)
        if b is None:
            continue
        if b.gpu_layers >= MIN_OFFLOAD_SHARE * b.layer_count:
            return layout, b  # best quality with most of the model on the GPU
        found.append((layout, b))
    if not found:
        return None
    # Nothing reaches the share: take the largest part on the GPU (better quality on ties).
    return max(found, key=lambda item: item[1].gpu_layers / item[1].layer_count)


def _cpu_reason(hardware: HardwareReport, gpu: GpuInfo | None) -> str:
    if gpu is not None:
        return f"Not even one layer fits in the {format_gb(gpu.free_bytes)} free on {gpu.name}"
    if hardware.gpus and not hardware.gpu_offload_supported:
        return "This llama.cpp build cannot use the GPU"
    return "No usable NVIDIA GPU was found"


Badge = Literal["fits on GPU", "partial offload", "CPU only", "too large"]


def fit_badge(
    source: ModelSource, quant: str, hardware: HardwareReport,
    context: ContextNeeds | None = None,
) -> Badge:
    """Where one quantization can run on this machine, for the Models page."""
    layout = layout_for(source, quant)
    context = context or ContextNeeds(layout.vision.patches)
    ram = ram_budget(hardware)
    gpu = hardware.best_gpu() if hardware.gpu_offload_supported else None
    if gpu is not None:
        if _fits(estimate_layout(layout, -1, context), gpu, ram):
            return "fits on GPU"
        if _most_layers(layout, gpu, ram, context) is not None:
            return "partial offload"
    if _fits(estimate_layout(layout, 0, context), None, ram):
        return "CPU only"
    return "too large"


def describe(choice: FitChoice) -> dict[str, Any]:
    """A JSON-ready summary of a choice."""
    return {
        "quant": choice.quant,
        "gpu_layers": choice.gpu_layers,
        "device": choice.device,
        "sentence": choice.sentence,
        "breakdown": choice.breakdown.to_dict(),
    }


def load_choice(folder: ModelFolder | Path | str, quant: str | None = None,
                hardware: HardwareReport | None = None) -> FitChoice:
    """The automatic choice for loading ``folder`` here: among every quantization it holds
    (``quant`` None), or for ``quant`` alone — another quantization's layers would not
    fit it. ``hardware`` defaults to this machine's."""
    folder = folder if isinstance(folder, ModelFolder) else ModelFolder(Path(folder))
    if hardware is None:
        from app.hardware import detect

        hardware = detect()
    available = folder.text_types() if quant is None else [folder.resolve(quant).quant]
    return choose(folder, hardware, available_quants=available)


def gpu_layers_of(choice: FitChoice) -> int:
    """The GPU layers to load with (-1 = all): the choice's, or 0 (the CPU) when nothing
    fits — a model that does not fit is still tried on the CPU, where swap may carry it."""
    return choice.gpu_layers if choice.fits else 0


def auto_gpu_layers(folder: ModelFolder | Path | str, quant: str,
                    hardware: HardwareReport | None = None) -> int:
    """The GPU layers the automatic choice gives ``quant`` on this machine."""
    return gpu_layers_of(load_choice(folder, quant, hardware))
