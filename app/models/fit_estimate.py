"""How much memory a model needs on this machine (the estimate; the choice of what to
load from it is ``app.models.fit_choice``).

The estimate follows what llama.cpp allocates when ``app.engine.Engine`` loads a pair:
text weights per device (exact tensor bytes, from the GGUF header when the model is on disk,
else from the catalog's shapes), the F16 vision file, the KV cache for the task's context and
the compute buffers. The compute-buffer formulas were fitted to the sizes llama.cpp reports
for 3B/10B/28B shapes at 224/448/896 px and checked on real loads; ``docs/fit-estimate.md``
has the derivation and the measured errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from app.model_files import gguf_keys as keys
from app.model_files.decoder_shape import DecoderShape, shape_fields
from app.model_files.gguf_header import GGUFHeader
from app.model_files.model_folder import ModelFolder
from app.models.catalog import CatalogEntry, tensor_nbytes
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

