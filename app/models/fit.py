"""How much memory a model needs on this machine, and which quantization to run.

The estimate follows what llama.cpp allocates when ``app.engine.Engine`` loads a pair:
text weights per device (exact tensor bytes, from the GGUF header when the model is on disk,
else from the catalog's shapes), the F16 vision file, the KV cache for the task's context and
the compute buffers. The compute-buffer formulas were fitted to the sizes llama.cpp reports
for 3B/10B/28B shapes at 224/448/896 px and checked on real loads; ``docs/fit-estimate.md``
has the derivation and the measured errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.errors import CatalogError
from app.hardware import GpuInfo, HardwareReport, format_gb
from app.model_files import gguf_keys as keys
from app.model_files.decoder_shape import DecoderShape, shape_fields
from app.model_files.gguf_header import GGUFHeader
from app.model_files.model_folder import ModelFolder
from app.models.catalog import QUANTS, CatalogEntry, tensor_nbytes
from app.models.decode_speed import SpeedFigure, bytes_per_token, cpu_speeds
from app.settings.validation import MAX_NEW_TOKENS

MIB = 1024**2
F16_BYTES = 2
F32_BYTES = 4
CTX_PAD = 256  # llama.cpp pads n_ctx (and the SWA cache) to a multiple of 256


@dataclass(frozen=True)
class SafetyMargin:
    """Memory kept free on top of the estimate.

    GPU: 5% for allocator slack plus 300 MiB for what the estimate does not see (our own
    CUDA context and cuBLAS workspace, created only once llama.cpp starts). CPU: 5% plus
    500 MiB for the app itself (Python, numpy, the window, the image-embedding cache).
    """

    fraction: float = 0.05
    gpu_bytes: int = 300 * MIB
    cpu_bytes: int = 500 * MIB


SAFETY_MARGIN = SafetyMargin()
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
ModelSource = CatalogEntry | ModelFolder | Path | str


@dataclass(frozen=True)
class ContextNeeds:
    """The context the engine creates: one micro-batch holds the image and the prompt
    (the non-causal prefix), then ``max_new_tokens`` are generated.

    ``outputs`` is how many logit rows llama.cpp reserves per micro-batch. The engine sets
    n_outputs_max = 1 (it only reads the last row), which saves n_ubatch x vocab x 4
    bytes of compute buffer (0.49 GiB at 224 px, 4.2 GiB at 896 px); None means
    llama.cpp's default, the whole micro-batch.
    """

    image_tokens: int
    prompt_tokens: int = 256
    # The window's context holds the largest Max new tokens the settings allow.
    max_new_tokens: int = MAX_NEW_TOKENS
    outputs: int | None = 1

    @property
    def n_ubatch(self) -> int:
        return self.image_tokens + self.prompt_tokens

    @property
    def n_ctx(self) -> int:
        return _pad(self.n_ubatch + self.max_new_tokens, CTX_PAD)

    @property
    def n_outputs(self) -> int:
        return self.n_ubatch if self.outputs is None else min(self.outputs, self.n_ubatch)


@dataclass(frozen=True)
class TextLayout(DecoderShape):
    """What the estimate needs of the decoder file: its shapes and its bytes."""

    token_embd_bytes: int
    output_norm_bytes: int
    layer_bytes: tuple[int, ...]


@dataclass(frozen=True)
class VisionLayout:
    """What the estimate needs of the vision (mmproj) file."""

    weight_bytes: int
    hidden: int
    intermediate: int
    heads: int
    patches: int
    text_hidden: int
    patch: int = 14


@dataclass(frozen=True)
class ModelLayout:
    name: str
    quant: str
    text: TextLayout
    vision: VisionLayout

    @property
    def gpu_layer_count(self) -> int:
        """llama.cpp's layers for ``n_gpu_layers``: the blocks plus the output layer."""
        return self.text.layers + 1


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes llama.cpp needs, by part and by device. ``vision``, ``kv_cache``, ``compute``
    and ``margin`` are totals; their GPU shares are in the ``*_gpu`` fields."""

    weights_gpu: int
    weights_cpu: int
    vision: int
    kv_cache: int
    compute: int
    margin: int
    total_gpu: int
    total_cpu: int
    vision_gpu: int = 0
    kv_gpu: int = 0
    compute_gpu: int = 0
    margin_gpu: int = 0
    gpu_layers: int = 0  # resolved: 0 .. layer_count
    layer_count: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


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


# --- layouts --------------------------------------------------------------------------


def layout_for(source: ModelSource, quant: str) -> ModelLayout:
    """Read a model folder's headers, or build the layout from the catalog's shapes."""
    if isinstance(source, CatalogEntry):
        return _catalog_layout(source, quant)
    folder = source if isinstance(source, ModelFolder) else ModelFolder(Path(source))
    pair = folder.resolve(quant)
    return ModelLayout(folder.path.name, pair.quant, _text_layout(pair.text),
                       _vision_layout(pair.vision))


def _catalog_layout(entry: CatalogEntry, quant: str) -> ModelLayout:
    d = entry.dims
    tensors = {name: spec.nbytes for name, spec in d.text_tensors(quant).items()}
    text = TextLayout(
        **shape_fields(d),
        token_embd_bytes=tensors["token_embd.weight"],
        output_norm_bytes=tensors["output_norm.weight"],
        layer_bytes=_per_layer(tensors, d.layers),
    )
    vision = VisionLayout(
        sum(spec.nbytes for spec in d.vision_tensors().values()), d.vision_hidden,
        d.vision_intermediate, d.vision_heads, d.image_tokens, d.hidden, d.patch,
    )
    return ModelLayout(entry.name, quant.upper(), text, vision)


def _per_layer(tensor_bytes: dict[str, int], layers: int) -> tuple[int, ...]:
    totals = [0] * layers
    for name, nbytes in tensor_bytes.items():
        if name.startswith("blk."):
            totals[int(name.split(".")[1])] += nbytes
    return tuple(totals)


def _int(header: GGUFHeader, key: str) -> int:
    return int(header.get(key))  # type: ignore[call-overload]


def _text_layout(h: GGUFHeader) -> TextLayout:
    tensors = {name: tensor_nbytes(t.shape, t.ggml_type) for name, t in h.tensors.items()}
    layers = _int(h, "gemma2.block_count")
    return TextLayout(
        hidden=_int(h, "gemma2.embedding_length"),
        intermediate=_int(h, "gemma2.feed_forward_length"),
        layers=layers,
        heads=_int(h, "gemma2.attention.head_count"),
        kv_heads=_int(h, "gemma2.attention.head_count_kv"),
        head_dim=_int(h, "gemma2.attention.key_length"),
        vocab_rows=h.tensors["token_embd.weight"].shape[1],
        sliding_window=int(h.get("gemma2.attention.sliding_window", 4096)),  # type: ignore[call-overload]
        token_embd_bytes=tensors["token_embd.weight"],
        output_norm_bytes=tensors["output_norm.weight"],
        layer_bytes=_per_layer(tensors, layers),
    )


def _vision_layout(h: GGUFHeader) -> VisionLayout:
    return VisionLayout(
        weight_bytes=sum(tensor_nbytes(t.shape, t.ggml_type) for t in h.tensors.values()),
        hidden=_int(h, "clip.vision.embedding_length"),
        intermediate=_int(h, "clip.vision.feed_forward_length"),
        heads=_int(h, "clip.vision.attention.head_count"),
        patches=_int(h, keys.IMAGE_TOKENS),
        text_hidden=_int(h, keys.TEXT_HIDDEN),
        patch=_int(h, "clip.vision.patch_size"),
    )


# --- formulas -------------------------------------------------------------------------


def _pad(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def kv_cells(text: TextLayout, context: ContextNeeds, swa_full: bool = True) -> tuple[int, int]:
    """(cells of a full-attention layer, cells of a sliding-window layer).

    llama.cpp's gemma2 uses an iSWA cache (llama-kv-cache-iswa.cpp): full layers get n_ctx;
    sliding layers GGML_PAD(min(n_ctx, n_swa + n_ubatch), 256), or n_ctx with ``swa_full``
    (llama_context_default_params' default, which the engine keeps). PaliDesk's contexts
    are never longer than n_swa + n_ubatch, so both give n_ctx here.
    """
    full = context.n_ctx
    swa = full if swa_full else _pad(min(full, text.sliding_window + context.n_ubatch), CTX_PAD)
    return full, swa


def kv_layer_bytes(text: TextLayout, context: ContextNeeds, swa_full: bool = True) -> list[int]:
    """F16 K and V per layer: 2 x kv_heads x head_dim x cells x 2 bytes. Gemma 2 slides
    the window on the even layers (llama.cpp's swa pattern 2) and attends fully on odd."""
    full, swa = kv_cells(text, context, swa_full)
    row = 2 * text.kv_heads * text.head_dim * F16_BYTES
    return [row * (swa if i % 2 == 0 else full) for i in range(text.layers)]


def text_compute_parts(text: TextLayout, context: ContextNeeds,
                       flash_attention: bool = False) -> tuple[int, int]:
    """(layer scratch, logits phase) of llama.cpp's compute buffer; it reserves the larger.

    Fitted to llama.cpp's reported CPU buffer. With flash attention: per micro-batch token
    3 x n_ff + n_head x head_dim + 3 x hidden (+10) floats, plus 4 bytes per (token,
    context cell) for the two attention masks; the logits phase holds n_outputs x vocab
    floats plus two hidden-state rows per token. Without it (the engine's decoder, for
    deterministic output; ``EngineConfig.flash_attention``) the scores of every head,
    n_head x T x C floats, are materialised and the masks stay F32: the scratch is the
    larger of the attention phase (scores + 4 q-sized + 3 hidden rows per token + masks,
    exact on the 896 px shapes) and the FFN phase (the flash figure + 3 q-sized rows per
    token + masks; exact for 3B and 28B, 12-13% above for 10B, whose buffers pack tighter).
    """
    t, c = context.n_ubatch, context.n_ctx
    q_width = text.heads * text.head_dim
    per_token = 3 * text.intermediate + q_width + 3 * text.hidden + 10
    layer = t * per_token * F32_BYTES + 4 * t * c
    logits = context.n_outputs * text.vocab_rows * F32_BYTES + 2 * t * text.hidden * F32_BYTES
    if flash_attention:
        return layer, logits
    masks = 8 * t * c
    ffn_phase = layer + 4 * t * c + 3 * q_width * t * F32_BYTES
    attention_phase = (text.heads * t * c + t * (4 * q_width + 3 * text.hidden)) * F32_BYTES
    return max(ffn_phase, attention_phase + masks), logits + masks


def text_compute_bytes(text: TextLayout, context: ContextNeeds,
                       flash_attention: bool = False) -> int:
    return max(text_compute_parts(text, context, flash_attention))


def vision_compute_bytes(vision: VisionLayout, flash_attention: bool = True) -> int:
    """mtmd's compute buffer for one image, fitted to its reported size. The peak is the
    largest of three phases: the F32 image plus its F16 im2col copy for the patch
    convolution; a ViT block (MLP + 3 x hidden floats per patch); the projector (its two
    2 x hidden intermediates + the text-hidden output per patch). Without flash attention
    the P x P scores of every head are added."""
    p, h = vision.patches, vision.hidden
    patch_values = 3 * vision.patch * vision.patch
    stem = p * patch_values * (F32_BYTES + F16_BYTES)
    per_patch = max(vision.intermediate + 3 * h, 4 * h + vision.text_hidden)
    fused = max(stem, p * per_patch * F32_BYTES)
    if flash_attention:
        return fused
    plain = p * p * vision.heads * F32_BYTES + 4 * p * vision.hidden * F32_BYTES
    return max(fused, plain)


# --- the estimate ---------------------------------------------------------------------


def estimate(
    source: ModelSource, quant: str, gpu_layers: int, context: ContextNeeds | None = None
) -> MemoryBreakdown:
    """Memory for ``quant`` with ``gpu_layers`` offloaded (-1 all, 0 CPU only)."""
    layout = layout_for(source, quant)
    return estimate_layout(layout, gpu_layers, context or ContextNeeds(layout.vision.patches))


def estimate_layout(layout: ModelLayout, gpu_layers: int, context: ContextNeeds) -> MemoryBreakdown:
    """``estimate`` for an already-read layout (choose() tries many layer counts)."""
    text, n = layout.text, layout.text.layers
    on_gpu = layout.gpu_layer_count if gpu_layers < 0 else min(gpu_layers, layout.gpu_layer_count)
    # llama.cpp offloads the *last* layers first, the output layer (index n) before any
    # block; the input embedding always stays on the CPU. The output matrix is the tied
    # token table, so an offloaded output is a second copy of it on the GPU.
    gpu_blocks = set(range(n - max(on_gpu - 1, 0), n)) if on_gpu else set()
    output_bytes = text.token_embd_bytes + text.output_norm_bytes
    block_gpu = sum(b for i, b in enumerate(text.layer_bytes) if i in gpu_blocks)
    weights_gpu = block_gpu + (output_bytes if on_gpu else 0)
    weights_cpu = (sum(text.layer_bytes) - block_gpu + text.token_embd_bytes
                   + (0 if on_gpu else text.output_norm_bytes))

    kv = kv_layer_bytes(text, context)
    kv_gpu = sum(b for i, b in enumerate(kv) if i in gpu_blocks)

    layer_scratch, logits = text_compute_parts(text, context)
    full_compute = max(layer_scratch, logits)
    output_buffer = text.vocab_rows * F32_BYTES  # host copy of one row of logits
    if not on_gpu:
        compute_gpu, compute_cpu = 0, full_compute
    elif on_gpu == layout.gpu_layer_count:
        # Host side of a full offload: inputs and outputs staged for the GPU (not measured).
        compute_gpu, compute_cpu = full_compute, 2 * context.n_ubatch * text.hidden * F32_BYTES
    else:
        compute_gpu, compute_cpu = full_compute, layer_scratch
    compute_cpu += output_buffer

    # The engine puts the vision encoder on the GPU whenever it offloads anything. GPU
    # flash attention for SigLIP's head size is not verified: count the larger buffer.
    vision_gpu = 0
    if on_gpu:
        vision = layout.vision.weight_bytes + vision_compute_bytes(layout.vision, False)
        vision_gpu = vision
    else:
        vision = layout.vision.weight_bytes + vision_compute_bytes(layout.vision, True)

    gpu_parts = weights_gpu + kv_gpu + compute_gpu + vision_gpu
    cpu_parts = weights_cpu + (sum(kv) - kv_gpu) + compute_cpu + (vision - vision_gpu)
    m = SAFETY_MARGIN
    margin_gpu = int(gpu_parts * m.fraction) + m.gpu_bytes if on_gpu else 0
    margin_cpu = int(cpu_parts * m.fraction) + m.cpu_bytes
    return MemoryBreakdown(
        weights_gpu=weights_gpu, weights_cpu=weights_cpu, vision=vision, kv_cache=sum(kv),
        compute=compute_gpu + compute_cpu, margin=margin_gpu + margin_cpu,
        total_gpu=gpu_parts + margin_gpu, total_cpu=cpu_parts + margin_cpu,
        vision_gpu=vision_gpu, kv_gpu=kv_gpu, compute_gpu=compute_gpu, margin_gpu=margin_gpu,
        gpu_layers=on_gpu, layer_count=layout.gpu_layer_count,
    )


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
