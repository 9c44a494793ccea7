"""Which GGUF tensor each checkpoint tensor becomes, with its shape, type and transform.

A plan is built from shapes only, so the GGUF header (which lists every tensor) can be
written before any weight is read; weights are then streamed one by one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as QType
from gguf.quants import quantize

from app.convert.checkpoint import Checkpoint
from app.errors import ConversionError

# Scale that makes the GELU identity exact on ggml's CPU path (see _projector_tensors).
GELU_IDENTITY_SCALE = 1000.0

OUT_TYPES = {"f32": QType.F32, "f16": QType.F16, "bf16": QType.BF16}


@dataclass(frozen=True)
class PlannedTensor:
    """One GGUF tensor: ``load()`` returns its float32 values in numpy (row-major) shape."""

    name: str
    shape: tuple[int, ...]
    qtype: QType
    load: Callable[[], np.ndarray]
    # Rows start:stop of the tensor, for streaming large matrices in blocks.
    load_rows: Callable[[int, int], np.ndarray] | None = None

    @property
    def nbytes(self) -> int:
        itemsize = 4 if self.qtype == QType.F32 else 2
        return math.prod(self.shape) * itemsize

    def blocks(self, max_bytes: int = 64 << 20) -> Iterator[np.ndarray]:
        """The float32 values in row blocks of at most ``max_bytes`` (as float32)."""
        if self.load_rows is None or len(self.shape) < 2:
            yield self.load()
            return
        rows = self.shape[0]
        step = max(1, max_bytes // (math.prod(self.shape[1:]) * 4))
        for start in range(0, rows, step):
            yield self.load_rows(start, min(rows, start + step))


def encode(values: np.ndarray, qtype: QType) -> np.ndarray:
    """float32 values -> the contiguous array whose bytes GGUF stores for ``qtype``."""
    # gguf's BF16 rounds to nearest even like ggml_compute_fp32_to_bf16.
    return np.ascontiguousarray(quantize(np.ascontiguousarray(values, np.float32), qtype))


# canonical text name pattern -> (gguf name template, gemma norm (+1))
_TEXT_RULES: list[tuple[re.Pattern[str], str, bool]] = [
    (re.compile(r"text\.embed_tokens\.weight"), "token_embd.weight", False),
    (re.compile(r"text\.norm\.weight"), "output_norm.weight", True),
    *[
        (re.compile(rf"text\.layers\.(\d+)\.{hf}\.weight"), rf"blk.\1.{gg}.weight", norm)
        for hf, gg, norm in (
            ("input_layernorm", "attn_norm", True),
            (r"self_attn\.q_proj", "attn_q", False),
            (r"self_attn\.k_proj", "attn_k", False),
            (r"self_attn\.v_proj", "attn_v", False),
            (r"self_attn\.o_proj", "attn_output", False),
            ("post_attention_layernorm", "post_attention_norm", True),
            ("pre_feedforward_layernorm", "ffn_norm", True),
            (r"mlp\.gate_proj", "ffn_gate", False),
            (r"mlp\.up_proj", "ffn_up", False),
            (r"mlp\.down_proj", "ffn_down", False),
            ("post_feedforward_layernorm", "post_ffw_norm", True),
        )
    ],
]

_VISION_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"vision\.embeddings\.patch_embedding\.(weight|bias)"), r"v.patch_embd.\1"),
    (re.compile(r"vision\.embeddings\.position_embedding\.weight"), "v.position_embd.weight"),
    (re.compile(r"vision\.post_layernorm\.(weight|bias)"), r"v.post_ln.\1"),
    *[
        (re.compile(rf"vision\.encoder\.layers\.(\d+)\.{hf}\.(weight|bias)"), rf"v.blk.\1.{gg}.\2")
        for hf, gg in (
            (r"self_attn\.q_proj", "attn_q"),
            (r"self_attn\.k_proj", "attn_k"),
            (r"self_attn\.v_proj", "attn_v"),
            (r"self_attn\.out_proj", "attn_out"),
            ("layer_norm1", "ln1"),
            ("layer_norm2", "ln2"),
            (r"mlp\.fc1", "ffn_up"),
            (r"mlp\.fc2", "ffn_down"),
        )
    ],
]


def _expected_text_shapes(ck: Checkpoint) -> dict[str, tuple[int, ...]]:
    t = ck.text
    shapes: dict[str, tuple[int, ...]] = {
        "text.embed_tokens.weight": (t.vocab_rows, t.hidden),
        "text.norm.weight": (t.hidden,),
    }
    for i in range(t.layers):
        p = f"text.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (t.hidden,),
            p + "self_attn.q_proj.weight": (t.heads * t.head_dim, t.hidden),
            p + "self_attn.k_proj.weight": (t.kv_heads * t.head_dim, t.hidden),
            p + "self_attn.v_proj.weight": (t.kv_heads * t.head_dim, t.hidden),
            p + "self_attn.o_proj.weight": (t.hidden, t.heads * t.head_dim),
            p + "post_attention_layernorm.weight": (t.hidden,),
            p + "pre_feedforward_layernorm.weight": (t.hidden,),
            p + "mlp.gate_proj.weight": (t.intermediate, t.hidden),
            p + "mlp.up_proj.weight": (t.intermediate, t.hidden),
            p + "mlp.down_proj.weight": (t.hidden, t.intermediate),
            p + "post_feedforward_layernorm.weight": (t.hidden,),
        }
    return shapes


def _expected_vision_shapes(ck: Checkpoint) -> dict[str, tuple[int, ...]]:
    v, h = ck.vision, ck.vision.hidden
    shapes: dict[str, tuple[int, ...]] = {
        "vision.embeddings.patch_embedding.weight": (h, 3, v.patch, v.patch),
        "vision.embeddings.patch_embedding.bias": (h,),
        "vision.embeddings.position_embedding.weight": (v.image_tokens, h),
        "vision.post_layernorm.weight": (h,),
        "vision.post_layernorm.bias": (h,),
        "proj.linear.weight": (ck.text.hidden, h),
        "proj.linear.bias": (ck.text.hidden,),
    }
    for i in range(v.layers):
        p = f"vision.encoder.layers.{i}."
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                     "self_attn.out_proj"):
            shapes |= {p + name + ".weight": (h, h), p + name + ".bias": (h,)}
        for name in ("layer_norm1", "layer_norm2"):
            shapes |= {p + name + ".weight": (h,), p + name + ".bias": (h,)}
        shapes |= {
            p + "mlp.fc1.weight": (v.intermediate, h),
            p + "mlp.fc1.bias": (v.intermediate,),
            p + "mlp.fc2.weight": (h, v.intermediate),
            p + "mlp.fc2.bias": (h,),
        }
    return shapes


def check_tensors(ck: Checkpoint) -> None:
    """Every expected tensor is present with its expected shape, and nothing else is."""
    expected = _expected_text_shapes(ck) | _expected_vision_shapes(ck)
    present = {name for name in ck.names if name != "lm_head.weight"}
    missing = sorted(set(expected) - present)
    if missing:
        first = ck.names.get(missing[0], missing[0])
        raise ConversionError(f"The checkpoint lacks {len(missing)} tensor(s), e.g. {first}.")
    unknown = sorted(present - set(expected))
    if unknown:
        raise ConversionError(
            f"Unknown tensor {ck.names[unknown[0]]!r}: it is not part of a PaliGemma 2 model "
            f"of this size ({ck.text.layers} text layers, {ck.vision.layers} vision layers)."
        )
    for name, shape in expected.items():
        actual = ck.shape(name)
        if actual != shape:
            raise ConversionError(
                f"Shape mismatch for {ck.names[name]}: expected {list(shape)}, found "
                f"{list(actual)}. The config and the weights do not agree."
            )


def _rename(name: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, template in rules:
        if pattern.fullmatch(name):
            return pattern.sub(template, name)
    raise ConversionError(f"No GGUF name for tensor {name!r}.")


def text_plan(ck: Checkpoint, outtype: str) -> list[PlannedTensor]:
    """The text GGUF's tensors, in a stable order (llama.cpp does not mind the order)."""
    qtype = OUT_TYPES[outtype]
    plan = []
    for name, shape in _expected_text_shapes(ck).items():
        pattern, template, gemma_norm = next(r for r in _TEXT_RULES if r[0].fullmatch(name))

        def load(name: str = name, gemma_norm: bool = gemma_norm) -> np.ndarray:
            values = ck.read(name)
            # Gemma's RMSNorm multiplies by (1 + w); llama.cpp's by w.
            return values + 1.0 if gemma_norm else values

        # 1-D tensors (norms) stay F32, as in llama.cpp's own converter.
        matrix = len(shape) > 1
        plan.append(PlannedTensor(
            pattern.sub(template, name), shape, qtype if matrix else QType.F32, load,
            (lambda a, b, name=name: ck.read_rows(name, a, b)) if matrix else None,
        ))
    return plan


def vision_plan(ck: Checkpoint, outtype: str) -> list[PlannedTensor]:
    """The mmproj GGUF's tensors: SigLIP as is, then the projector as ``janus_pro``."""
    qtype = OUT_TYPES[outtype]
    plan = []
    for name, shape in _expected_vision_shapes(ck).items():
        if name.startswith("proj."):
            continue
        # Matrices (and the patch kernel) in the asked type; position embeddings, norms
        # and biases in F32 as llama.cpp's mmproj converter writes them.
        keep_f32 = len(shape) == 1 or "position_embedding" in name
        plan.append(PlannedTensor(
            _rename(name, _VISION_RULES), shape, QType.F32 if keep_f32 else qtype,
            lambda name=name: ck.read(name),
            lambda a, b, name=name: ck.read_rows(name, a, b),
        ))
    return plan + _projector_tensors(ck)


def _projector_tensors(ck: Checkpoint) -> list[PlannedTensor]:
    """PaliGemma's linear projector written as janus_pro's ``mm.1(gelu(mm.0(x)))``.

    GELU is odd-symmetric up to x: gelu(y) - gelu(-y) = y. With mm.0 = s*[I; -I] and
    mm.1 = [P, -P] / (s*sqrt(H)), the block computes (P x + b) / sqrt(H): exactly the rows
    the Gemma decoder needs (it multiplies every input row by sqrt(H) itself). s = 1000
    pushes almost every value past ggml's |y| >= 10 cutoff, where its CPU GELU is exact
    instead of a float16 table look-up. Both stay F32 (small; an F16 mm.1 would overflow).
    """
    hv, ht = ck.vision.hidden, ck.text.hidden
    s = GELU_IDENTITY_SCALE
    root = math.sqrt(ht)

    def mm0_weight() -> np.ndarray:
        eye = np.eye(hv, dtype=np.float32) * s
        return np.concatenate([eye, -eye], axis=0)

    def mm1_weight() -> np.ndarray:
        p = ck.read("proj.linear.weight") / (s * root)
        return np.concatenate([p, -p], axis=1)

    return [
        PlannedTensor("mm.0.weight", (2 * hv, hv), QType.F32, mm0_weight),
        PlannedTensor("mm.0.bias", (2 * hv,), QType.F32,
                      lambda: np.zeros(2 * hv, dtype=np.float32)),
        PlannedTensor("mm.1.weight", (ht, 2 * hv), QType.F32, mm1_weight),
        PlannedTensor("mm.1.bias", (ht,), QType.F32,
                      lambda: ck.read("proj.linear.bias") / root),
    ]
