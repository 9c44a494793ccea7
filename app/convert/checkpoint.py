"""A Hugging Face PaliGemma 2 checkpoint folder: its config, its shards, its tensor names.

Both tensor-name layouts are accepted (transformers < 4.52 writes
``language_model.model.*`` / ``vision_tower.vision_model.*``; newer versions nest them under
``model.`` and transformers 5 drops the ``vision_model.`` level) by reducing every name to
one canonical form: ``text.*``, ``vision.*``, ``proj.*`` or ``lm_head.weight``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.convert.safetensors_reader import SafetensorsFiles
from app.errors import ConversionError
from app.model_files.decoder_shape import DecoderShape

# Gemma2Config / SiglipVisionConfig defaults that real PaliGemma 2 configs omit.
_TEXT_DEFAULTS = {
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "sliding_window": 4096,
    "max_position_embeddings": 8192,
}


@dataclass(frozen=True)
class TextDims(DecoderShape):
    """The decoder's shapes plus what the converter writes into the text GGUF."""

    rms_eps: float
    rope_theta: float
    attn_softcap: float
    final_softcap: float
    context_length: int


@dataclass(frozen=True)
class VisionDims:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    patch: int
    image_size: int
    eps: float

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch) ** 2


def canonical_name(name: str) -> str | None:
    """Reduce either layout's tensor name to ``text.* | vision.* | proj.* | lm_head.weight``."""
    if name.startswith("model.") and name[6:].startswith(
        ("language_model.", "vision_tower.", "multi_modal_projector.")
    ):
        name = name[6:]
    if name in ("lm_head.weight", "language_model.lm_head.weight"):
        return "lm_head.weight"
    if name.startswith("language_model."):
        return "text." + name.removeprefix("language_model.").removeprefix("model.")
    if name.startswith("vision_tower."):
        return "vision." + name.removeprefix("vision_tower.").removeprefix("vision_model.")
    if name.startswith("multi_modal_projector."):
        return "proj." + name.removeprefix("multi_modal_projector.")
    return None


@dataclass
class Checkpoint:
    """An opened checkpoint: call ``close()`` (or use ``with``) to drop the memory maps."""

    path: Path
    config: dict
    text: TextDims
    vision: VisionDims
    image_token_id: int
    files: SafetensorsFiles
    names: dict[str, str]  # canonical -> name in the files
    tied: bool

    def read(self, canonical: str):  # -> np.ndarray
        return self.files.read(self.names[canonical])

    def read_rows(self, canonical: str, start: int, stop: int):  # -> np.ndarray
        return self.files.read_rows(self.names[canonical], start, stop)

    def shape(self, canonical: str) -> tuple[int, ...]:
        return self.files.entries[self.names[canonical]].shape

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.files.close()


def _shard_paths(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConversionError(f"{index.name} is not a valid shard index ({exc}).") from exc
        paths = sorted({folder / shard for shard in weight_map.values()})
        missing = [p.name for p in paths if not p.exists()]
        if missing:
            raise ConversionError(
                f"The checkpoint is incomplete: missing shard(s) {', '.join(missing)}."
            )
        return paths
    paths = sorted(folder.glob("*.safetensors"))
    if not paths:
        raise ConversionError(
            f"{folder} has no .safetensors weights. PaliDesk converts Hugging Face "
            "checkpoints in safetensors format."
        )
    return paths


def _read_config(folder: Path) -> dict:
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ConversionError(f"{folder} has no config.json: it is not a Hugging Face checkpoint.")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConversionError(f"config.json cannot be read ({exc}).") from exc
    if not isinstance(config, dict) or not all(
        isinstance(config.get(part, {}), dict) for part in ("text_config", "vision_config")
    ):
        raise ConversionError("config.json is not a Hugging Face model configuration.")
    if config.get("model_type") != "paligemma":
        raise ConversionError(
            f"This checkpoint is a {config.get('model_type', 'unknown')!r} model, not PaliGemma."
        )
    text_type = config.get("text_config", {}).get("model_type")
    if text_type != "gemma2":
        raise ConversionError(
            f"This PaliGemma checkpoint uses a {text_type!r} decoder; PaliDesk runs "
            "PaliGemma 2 (Gemma 2 decoder) only."
        )
    return config


def _layer_count(shape: dict[str, tuple[int, ...]], prefix: str) -> int:
    """1 + the highest layer index among tensors named ``<prefix><N>.*``."""
    return 1 + max(int(n[len(prefix):].split(".")[0]) for n in shape if n.startswith(prefix))


def _text_dims(config: dict, shape: dict[str, tuple[int, ...]]) -> TextDims:
    tc = {**_TEXT_DEFAULTS, **config.get("text_config", {})}
    # transformers 5 keeps rope_theta inside rope_parameters.
    tc.update({k: v for k, v in (tc.get("rope_parameters") or {}).items() if k == "rope_theta"})
    vocab_rows, hidden = shape["text.embed_tokens.weight"]
    heads = int(tc.get("num_attention_heads", 8))
    q_rows = shape["text.layers.0.self_attn.q_proj.weight"][0]
    head_dim = int(tc.get("head_dim", q_rows // heads))
    kv_heads = shape["text.layers.0.self_attn.k_proj.weight"][0] // head_dim
    layers = _layer_count(shape, "text.layers.")
    return TextDims(
        hidden=hidden,
        intermediate=shape["text.layers.0.mlp.gate_proj.weight"][0],
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_rows=vocab_rows,
        rms_eps=float(tc["rms_norm_eps"]),
        rope_theta=float(tc["rope_theta"]),
        attn_softcap=float(tc["attn_logit_softcapping"] or 0.0),
        final_softcap=float(tc["final_logit_softcapping"] or 0.0),
        sliding_window=int(tc["sliding_window"]),
        context_length=int(tc["max_position_embeddings"]),
    )


def _vision_dims(config: dict, shape: dict[str, tuple[int, ...]]) -> VisionDims:
    vc = config.get("vision_config", {})
    act = vc.get("hidden_act", "gelu_pytorch_tanh")
    if act not in ("gelu_pytorch_tanh", "gelu_new", "gelu"):
        raise ConversionError(f"The vision tower uses {act!r}; SigLIP in PaliGemma uses GELU.")
    hidden, _, patch, _ = shape["vision.embeddings.patch_embedding.weight"]
    positions = shape["vision.embeddings.position_embedding.weight"][0]
    side = math.isqrt(positions)
    if side * side != positions:
        raise ConversionError(f"The vision tower has {positions} positions, not a square grid.")
    layers = _layer_count(shape, "vision.encoder.layers.")
    return VisionDims(
        hidden=hidden,
        intermediate=shape["vision.encoder.layers.0.mlp.fc1.weight"][0],
        layers=layers,
        # So400m has 16 heads; SiglipVisionConfig's own default (12) is for other sizes.
        heads=int(vc.get("num_attention_heads", 16)),
        patch=patch,
        image_size=side * patch,
        eps=float(vc.get("layer_norm_eps", 1e-6)),
    )


# (config section, key, what it means to a person, the value the weights imply)
_CONFIG_CHECKS: tuple[tuple[str, str, str, Callable[[TextDims, VisionDims], int]], ...] = (
    ("text_config", "hidden_size", "text hidden size", lambda t, v: t.hidden),
    ("text_config", "intermediate_size", "text intermediate size",
     lambda t, v: t.intermediate),
    ("text_config", "num_hidden_layers", "text layer count", lambda t, v: t.layers),
    ("text_config", "num_key_value_heads", "key/value head count", lambda t, v: t.kv_heads),
    ("text_config", "num_image_tokens", "image token count", lambda t, v: v.image_tokens),
    ("vision_config", "hidden_size", "vision hidden size", lambda t, v: v.hidden),
    ("vision_config", "intermediate_size", "vision intermediate size",
     lambda t, v: v.intermediate),
    ("vision_config", "num_hidden_layers", "vision layer count", lambda t, v: v.layers),
    ("vision_config", "patch_size", "patch size", lambda t, v: v.patch),
    ("vision_config", "image_size", "image size", lambda t, v: v.image_size),
    ("vision_config", "num_image_tokens", "image token count", lambda t, v: v.image_tokens),
)


def check_config(config: dict, text: TextDims, vision: VisionDims) -> None:
    """Refuse a config.json that contradicts the shapes of the weights beside it.

    The converter takes sizes from the tensors, so a wrong config would not break the
    conversion itself; but it means the folder was assembled from two different models
    (or edited by hand), and whatever else the config says cannot be trusted either.
    Only values the config states are compared: real configs omit many of them.
    """
    wrong = []
    for section, key, what, actual in _CONFIG_CHECKS:
        stated = config.get(section, {}).get(key)
        if stated is None or isinstance(stated, bool):
            continue
        found = actual(text, vision)
        if not isinstance(stated, int) or stated != found:
            wrong.append(f"{what} {stated!r} in config.json, {found} in the weights")
    if wrong:
        raise ConversionError(
            "The checkpoint's config.json contradicts its weights ("
            + "; ".join(wrong) + "). The folder mixes files of different models: download "
            "or copy the checkpoint again."
        )


def open_checkpoint(folder: Path) -> Checkpoint:
    """Open a PaliGemma 2 checkpoint folder, or raise ConversionError saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder} is not a folder.")
    config = _read_config(folder)
    files = SafetensorsFiles(_shard_paths(folder))
    names: dict[str, str] = {}
    for name in files.entries:
        canonical = canonical_name(name)
        if canonical is None:
            files.close()
            raise ConversionError(
                f"Unknown tensor {name!r}: this does not look like a PaliGemma 2 checkpoint."
            )
        names[canonical] = name
    shape = {c: files.entries[n].shape for c, n in names.items()}
    needed = (
        "text.embed_tokens.weight",
        "text.layers.0.self_attn.q_proj.weight",
        "vision.embeddings.patch_embedding.weight",
        "vision.embeddings.position_embedding.weight",
        "proj.linear.weight",
    )
    missing = [c for c in needed if c not in shape]
    if missing:
        files.close()
        raise ConversionError(f"The checkpoint lacks tensor(s): {', '.join(missing)}.")
    tied = bool(config.get("text_config", {}).get("tie_word_embeddings", True)) and bool(
        config.get("tie_word_embeddings", True)
    )
    if "lm_head.weight" in names and not tied:
        files.close()
        raise ConversionError(
            "This checkpoint has an output head separate from its embeddings; llama.cpp's "
            "Gemma 2 always ties them, so it cannot be converted faithfully."
        )
    try:
        text, vision = _text_dims(config, shape), _vision_dims(config, shape)
    except (KeyError, ValueError, IndexError) as exc:
        files.close()
        raise ConversionError(f"The checkpoint's tensors do not fit PaliGemma 2 ({exc}).") from exc
    try:
        check_config(config, text, vision)
    except ConversionError:
        files.close()
        raise
    image_token_id = int(
        config.get("image_token_index", config.get("image_token_id", 257152))
    )
    return Checkpoint(folder, config, text, vision, image_token_id, files, names, tied)
