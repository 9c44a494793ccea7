"""The PaliGemma 2 checkpoints Google publishes in Transformers format, and their sizes.

Every size is computed, not copied from a web page: parameter counts from the shapes in
the engine doc's size table, GGUF sizes from the same shapes and the per-tensor types that
llama.cpp's quantizer chooses. ``_quantized_type`` mirrors ``llama_tensor_get_type`` in
llama.cpp's ``src/llama-quant.cpp`` (the copy vendored by llama-cpp-python 0.3.36) for
the architecture we write (gemma2, tied output, no experts, n_gqa = 2). Checked against the
real files in ``docs/fit-estimate.md``: within 0.001% for the full-size 3B, and byte-exact
for the tensors of the tiny test models (whose 64-wide rows trigger the fallbacks).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as T

from app.errors import CatalogError
from app.model_files.decoder_shape import DecoderShape

OWNER = "google"
VOCAB_ROWS = 257216  # 257152 tokens, embedding matrix padded to a multiple of 64
GGUF_ALIGNMENT = 32
# GGUF header bytes (metadata + tensor table) measured on the converted full-size 3B files.
# The text header is dominated by the 257k-token vocabulary, the same in every checkpoint;
# names and paths in the metadata move it by a few hundred bytes at most.
TEXT_HEADER_BYTES = 6_911_392
VISION_HEADER_BYTES = 25_504
# Besides the bf16 safetensors, a download needs tokenizer.model (Gemma's sentencepiece
# model, ~4.3 MB) and a few small JSON files (config, preprocessor, tokenizer config).
TOKENIZER_AND_CONFIG_BYTES = 4_300_000 + 20_000
BF16_BYTES = 2

# What PaliDesk offers, best quality first (BF16 is as good as F16 but last among equals:
# parity with the reference was measured at F16).
QUANTS = ("F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
# Each llama.cpp file type's default tensor type (llama_ftype_get_default_type).
_DEFAULT_TYPE = {
    "F32": T.F32, "F16": T.F16, "BF16": T.BF16, "Q8_0": T.Q8_0, "Q6_K": T.Q6_K,
    "Q5_K_M": T.Q5_K, "Q4_K_M": T.Q4_K, "Q4_0": T.Q4_0, "Q3_K_M": T.Q3_K, "Q2_K": T.Q2_K,
}
# tensor_type_fallback: a K-quant needs rows divisible by 256; narrower rows fall back.
_FALLBACK = {T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0, T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}
_UNQUANTIZED = (T.F32, T.F16, T.BF16)


@dataclass(frozen=True)
class TensorSpec:
    """One GGUF tensor: ``shape`` in GGUF order (row length first) and its ggml type."""

    shape: tuple[int, ...]
    ggml_type: T

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.shape, self.ggml_type)


def tensor_nbytes(shape: tuple[int, ...], ggml_type: int) -> int:
    """Bytes of a tensor's data (without the file's alignment padding)."""
    block, type_size = GGML_QUANT_SIZES[T(ggml_type)]
    return math.prod(shape) // block * type_size


def _padded(nbytes: int) -> int:
    return -(-nbytes // GGUF_ALIGNMENT) * GGUF_ALIGNMENT


@dataclass(frozen=True, kw_only=True)
class VariantDims(DecoderShape):
    """The shapes of one PaliGemma 2 checkpoint (engine doc §1): the decoder's (positional,
    as ``DecoderShape``), then keywords for what the published configs all share."""

    vocab_rows: int = VOCAB_ROWS
    sliding_window: int = 4096
    image_size: int
    vision_hidden: int = 1152
    vision_intermediate: int = 4304
    vision_layers: int = 27
    vision_heads: int = 16
    patch: int = 14

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch) ** 2

    def text_shapes(self) -> dict[str, tuple[int, ...]]:
        """Text GGUF tensors as our converter writes them (GGUF order; no ``output``: tied)."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes: dict[str, tuple[int, ...]] = {
            "token_embd.weight": (h, self.vocab_rows), "output_norm.weight": (h,),
        }
        for i in range(self.layers):
            p = f"blk.{i}."
            shapes |= {
                p + "attn_norm.weight": (h,), p + "attn_q.weight": (h, q),
                p + "attn_k.weight": (h, kv), p + "attn_v.weight": (h, kv),
                p + "attn_output.weight": (q, h), p + "post_attention_norm.weight": (h,),
                p + "ffn_norm.weight": (h,), p + "ffn_gate.weight": (h, self.intermediate),
                p + "ffn_up.weight": (h, self.intermediate),
                p + "ffn_down.weight": (self.intermediate, h), p + "post_ffw_norm.weight": (h,),
            }
        return shapes

    def vision_tensors(self) -> dict[str, TensorSpec]:
        """The F16 mmproj file: matrices F16; biases, norms, position embeddings and the
        janus_pro projector F32 (as app/convert/tensor_plan.py writes them)."""
        h, ff, p = self.vision_hidden, self.vision_intermediate, self.patch
        f16, f32 = T.F16, T.F32
        out = {
            "v.patch_embd.weight": TensorSpec((p, p, 3, h), f16),
            "v.patch_embd.bias": TensorSpec((h,), f32),
            "v.position_embd.weight": TensorSpec((h, self.image_tokens), f32),
            "v.post_ln.weight": TensorSpec((h,), f32), "v.post_ln.bias": TensorSpec((h,), f32),
        }
        for i in range(self.vision_layers):
            b = f"v.blk.{i}."
            for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
                out[b + name + ".weight"] = TensorSpec((h, h), f16)
                out[b + name + ".bias"] = TensorSpec((h,), f32)
            for name in ("ln1", "ln2"):
                out[b + name + ".weight"] = TensorSpec((h,), f32)
                out[b + name + ".bias"] = TensorSpec((h,), f32)
            out[b + "ffn_up.weight"] = TensorSpec((h, ff), f16)
            out[b + "ffn_up.bias"] = TensorSpec((ff,), f32)
            out[b + "ffn_down.weight"] = TensorSpec((ff, h), f16)
            out[b + "ffn_down.bias"] = TensorSpec((h,), f32)
        out |= {
            "mm.0.weight": TensorSpec((h, 2 * h), f32), "mm.0.bias": TensorSpec((2 * h,), f32),
            "mm.1.weight": TensorSpec((2 * h, self.hidden), f32),
            "mm.1.bias": TensorSpec((self.hidden,), f32),
        }
        return out

    def parameter_count(self) -> int:
        """Parameters of the Hugging Face checkpoint: decoder (embedding counted once: the
        LM head is tied), SigLIP tower and the linear projector."""
        text = sum(math.prod(s) for s in self.text_shapes().values())
        h, ff, p = self.vision_hidden, self.vision_intermediate, self.patch
        per_layer = 4 * (h * h + h) + 4 * h + (ff * h + ff) + (h * ff + h)
        vision = h * 3 * p * p + h + self.image_tokens * h + self.vision_layers * per_layer + 2 * h
        projector = self.hidden * h + self.hidden
        return text + vision + projector

    def text_tensors(self, quant: str) -> dict[str, TensorSpec]:
        """Every text tensor with the type llama.cpp gives it for ``quant`` (F32/F16/BF16
        are converter outputs; the rest come from ``llama_model_quantize``)."""
        default = _default_type(quant)
        out = {}
        for name, shape in self.text_shapes().items():
            if len(shape) < 2:  # norms: written F32 and never quantized
                out[name] = TensorSpec(shape, T.F32)
            elif default in _UNQUANTIZED:
                out[name] = TensorSpec(shape, default)
            else:
                out[name] = TensorSpec(shape, _quantized_type(name, shape, quant, self))
        return out


def _default_type(quant: str) -> T:
    try:
        return _DEFAULT_TYPE[quant.upper()]
    except KeyError:
        raise CatalogError(
            f"Unknown quantization {quant!r}; choose one of {', '.join(QUANTS)}."
        ) from None


def _use_more_bits(i: int, n: int) -> bool:
    # llama-quant.cpp: the first and last eighth of the layers, and every third in between.
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _quantized_type(name: str, shape: tuple[int, ...], quant: str, dims: VariantDims) -> T:
    """``llama_tensor_get_type`` for the file types PaliDesk offers."""
    quant = quant.upper()
    new = _DEFAULT_TYPE[quant]
    match = re.match(r"blk\.(\d+)\.", name)
    i, n = (int(match[1]) if match else -1), dims.layers
    gqa = dims.heads // dims.kv_heads
    if name == "token_embd.weight":
        # Tied embeddings: the token table is also the output matrix and gets its type.
        if shape[0] % GGML_QUANT_SIZES[new][0]:
            new = T.Q8_0
        elif new != T.Q8_0:
            new = T.Q6_K
    elif ".attn_v." in name:
        if quant == "Q2_K":
            new = T.Q4_K if gqa >= 4 else T.Q3_K
        elif quant == "Q3_K_M":
            new = T.Q5_K if i < 2 else T.Q4_K
        elif quant in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            new = T.Q6_K
    elif ".ffn_down." in name:
        if quant == "Q2_K":
            new = T.Q3_K
        elif quant == "Q3_K_M":
            new = T.Q5_K if i < n // 16 else T.Q4_K
        elif quant in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            new = T.Q6_K
    elif ".attn_output." in name:
        if quant == "Q2_K":
            new = T.Q3_K
        elif quant == "Q3_K_M":
            new = T.Q4_K
    # tensor_type_fallback: rows that do not fill a block take a smaller-block type.
    if shape[0] % GGML_QUANT_SIZES[new][0]:
        new = _FALLBACK.get(new, new)
        if shape[0] % GGML_QUANT_SIZES[new][0]:
            new = T.F16
    return new


SIZES = {
    "3b": VariantDims(2304, 9216, 26, 8, 4, 256, image_size=224),
    "10b": VariantDims(3584, 14336, 42, 16, 8, 256, image_size=224),
    "28b": VariantDims(4608, 36864, 46, 32, 16, 128, image_size=224),
}


@dataclass(frozen=True)
class CatalogEntry:
    """One checkpoint on Hugging Face. ``name`` is the repository name without the owner."""

    name: str
    repo_id: str
    params: str  # "3b", "10b" or "28b"
    kind: str  # "pt" (pretrained), "mix" (multi-task) or "ft" (fine-tuned)
    image_size: int
    description: str
    gated: bool = True  # every PaliGemma 2 repository: accept the Gemma licence on its page
    licence: str = "gemma"

    @cached_property
    def dims(self) -> VariantDims:
        base = SIZES[self.params]
        return dataclasses.replace(base, image_size=self.image_size)

    @property
    def image_tokens(self) -> int:
        return self.dims.image_tokens

    @property
    def quants(self) -> tuple[str, ...]:
        return QUANTS

    @property
    def licence_url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"

    def parameter_count(self) -> int:
        return self.dims.parameter_count()

    def download_bytes(self) -> int:
        """The bf16 safetensors (2 bytes a parameter) plus tokenizer and config files."""
        return download_bytes(self.dims)

    def text_file_bytes(self, quant: str) -> int:
        """Expected size of ``text-<quant>.gguf``."""
        return text_file_bytes(self.dims, quant)

    def vision_file_bytes(self) -> int:
        """Expected size of ``mmproj-f16.gguf`` (the vision file is never quantized)."""
        return vision_file_bytes(self.dims)

    def quant_file_bytes(self, quant: str) -> int:
        """Disk space for one quantization: its text file plus the F16 vision file."""
        return text_file_bytes(self.dims, quant) + vision_file_bytes(self.dims)


def download_bytes(dims: VariantDims) -> int:
    """The bf16 safetensors (2 bytes a parameter) plus tokenizer and config files."""
    return dims.parameter_count() * BF16_BYTES + TOKENIZER_AND_CONFIG_BYTES


def text_file_bytes(dims: VariantDims, quant: str) -> int:
    """Expected size of ``text-<quant>.gguf`` for a checkpoint of these shapes."""
    tensors = dims.text_tensors(quant)
    return TEXT_HEADER_BYTES + sum(_padded(t.nbytes) for t in tensors.values())


def vision_file_bytes(dims: VariantDims) -> int:
    """Expected size of ``mmproj-f16.gguf`` for a checkpoint of these shapes."""
    tensors = dims.vision_tensors()
    return VISION_HEADER_BYTES + sum(_padded(t.nbytes) for t in tensors.values())


def _entry(params: str, kind: str, size: int, description: str, suffix: str = "") -> CatalogEntry:
    name = f"paligemma2-{params}-{kind}{suffix}-{size}"
    return CatalogEntry(name, f"{OWNER}/{name}", params, kind, size, description)


_PT = "pretrained: a base for fine-tuning; answers only simple prompts"
_MIX = "multi-task: captions, OCR, questions, detection and segmentation"
_DOCCI = "fine-tuned on DOCCI: long, detailed image descriptions"

# All names below were checked against Hugging Face pages (the Transformers-format
# repositories, not the "-jax"/"-keras" ones): pt at 224/448/896 and mix at 224/448 for
# each size, and the two DOCCI fine-tunes (Google published no 28B DOCCI model).
CATALOG: tuple[CatalogEntry, ...] = (
    *(_entry(p, "pt", s, _PT) for p in SIZES for s in (224, 448, 896)),
    *(_entry(p, "mix", s, _MIX) for p in SIZES for s in (224, 448)),
    _entry("3b", "ft", 448, _DOCCI, "-docci"),
    _entry("10b", "ft", 448, _DOCCI, "-docci"),
)


def find(name: str) -> CatalogEntry:
    """The entry called ``name`` (case-insensitive; "google/" may be included)."""
    key = name.strip().lower().removeprefix(f"{OWNER}/")
    for entry in CATALOG:
        if entry.name == key:
            return entry
    names = [entry.name for entry in CATALOG]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    hint = (f"Did you mean {' or '.join(close)}?" if close
            else f"Known names: {', '.join(names)}.")
    raise CatalogError(f"{name!r} is not a PaliGemma 2 checkpoint PaliDesk knows. {hint}")


def entry_for_repo(repo_id: str) -> CatalogEntry | None:
    """The catalog entry a repository id names (``google/<name>`` only), else None.

    Another owner's repository of the same name may hold anything: it is not the entry.
    """
    owner, _, name = repo_id.strip().partition("/")
    if owner.lower() != OWNER or not name:
        return None
    return next((entry for entry in CATALOG if entry.name == name.lower()), None)


# What each VariantDims field is called when a mismatch is shown to a person.
_DIM_WORDS = {
    "hidden": "text hidden size", "intermediate": "text intermediate size",
    "layers": "text layers", "heads": "attention heads", "kv_heads": "key/value heads",
    "head_dim": "head size", "image_size": "image size", "vision_hidden": "vision hidden size",
    "vision_intermediate": "vision intermediate size", "vision_layers": "vision layers",
    "patch": "patch size",
}


def dims_differences(expected: VariantDims, found: VariantDims) -> list[str]:
    """``"text layers 26 expected, 4 found"`` for each shape that differs."""
    return [f"{words} {getattr(expected, field)} expected, {getattr(found, field)} found"
            for field, words in _DIM_WORDS.items()
            if getattr(expected, field) != getattr(found, field)]


def check_catalog_shapes(repo_id: str, found: VariantDims, what: str) -> None:
    """Refuse ``found`` (the shapes of ``what``) when ``repo_id`` is a catalog name whose
    published checkpoint has other shapes: a model must never be installed under a name
    that promises a different model."""
    entry = entry_for_repo(repo_id)
    if entry is None:
        return
    differences = dims_differences(entry.dims, found)
    if differences:
        raise CatalogError(
            f"{repo_id} should be PaliGemma 2 {entry.params.upper()} at "
            f"{entry.image_size} px, but {what} describes another model ("
            + "; ".join(differences[:4]) + "). PaliDesk did not install it. If you "
            "use a mirror (HF_ENDPOINT), check that it serves the real repository."
        )


def _config_int(section: dict, key: str, default: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogError(f"config.json gives {key} as {value!r}, not a positive whole number.")
    return value


def dims_from_config(config: object, repo_id: str) -> VariantDims:
    """The shapes a PaliGemma 2 ``config.json`` describes, or CatalogError in words.

    Values real configs leave out take transformers' defaults, which for Gemma 2 are the
    3B's and for the vision tower are replaced by So400m's (every PaliGemma 2 uses it).
    """
    if not isinstance(config, dict) or config.get("model_type") != "paligemma":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise CatalogError(
            f"{repo_id} is not a PaliGemma checkpoint (its config.json says "
            f"{kind or 'nothing about the model type'}). PaliDesk runs PaliGemma 2 models."
        )
    text, vision = config.get("text_config"), config.get("vision_config")
    if not isinstance(text, dict) or not isinstance(vision, dict):
        raise CatalogError(f"{repo_id}'s config.json has no usable text or vision section.")
    if text.get("model_type") != "gemma2":
        raise CatalogError(
            f"{repo_id} is a PaliGemma checkpoint with a {text.get('model_type')!r} decoder; "
            "PaliDesk runs PaliGemma 2 (Gemma 2 decoder) only."
        )
    base = SIZES["3b"]
    heads = _config_int(text, "num_attention_heads", base.heads)
    hidden = _config_int(text, "hidden_size", base.hidden)
    patch = _config_int(vision, "patch_size", base.patch)
    tokens = vision.get("num_image_tokens", text.get("num_image_tokens"))
    side = math.isqrt(tokens) if isinstance(tokens, int) and tokens > 0 else 224 // patch
    return VariantDims(
        hidden=hidden,
        intermediate=_config_int(text, "intermediate_size", base.intermediate),
        layers=_config_int(text, "num_hidden_layers", base.layers),
        heads=heads,
        kv_heads=_config_int(text, "num_key_value_heads", base.kv_heads),
        head_dim=_config_int(text, "head_dim", base.head_dim),
        image_size=_config_int(vision, "image_size", side * patch),
        vocab_rows=_config_int(text, "vocab_size", VOCAB_ROWS),
        vision_hidden=_config_int(vision, "hidden_size", base.vision_hidden),
        vision_intermediate=_config_int(vision, "intermediate_size", base.vision_intermediate),
        vision_layers=_config_int(vision, "num_hidden_layers", base.vision_layers),
        vision_heads=_config_int(vision, "num_attention_heads", base.vision_heads),
        patch=patch,
    )


def read_config_dims(path: Path, repo_id: str) -> VariantDims:
    """The shapes ``path`` (a config.json) describes; CatalogError unless PaliGemma 2."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CatalogError(f"The config.json of {repo_id} cannot be read ({exc}).") from exc
    return dims_from_config(config, repo_id)
