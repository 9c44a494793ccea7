"""Write a full-size PaliGemma 2 3B-224 checkpoint with random weights, for speed tests.

Real shapes, real vocabulary size, real config; random bf16 values. No real weights are
needed to measure speed, and none are downloaded. Run from the repository root::

    .venv/bin/python bench/make_fullsize_random.py --out $PALIDESK_BENCH_MODELS/pg2-3b-224-random

Writes, in about a minute and with little memory (each tensor is generated in chunks of
at most ``--chunk`` values and streamed straight into its safetensors shard):

- ``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json``: bf16 weights
  named as transformers 5.24 saves PaliGemma (``language_model.model.*``,
  ``vision_tower.*`` without ``vision_model.``, ``multi_modal_projector.linear.*``);
- ``config.json`` (like google/paligemma2-3b-pt-224), ``generation_config.json``,
  ``preprocessor_config.json``, ``tokenizer_config.json``, ``special_tokens_map.json``;
- ``tokenizer.json``: a synthetic BPE vocabulary of 257,153 pieces laid out like Gemma's
  (0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, byte-fallback pieces, normal pieces,
  <loc0000>..<loc1023> at 256000, <seg000>..<seg127> at 257024, <image> at 257152), so the
  converter sees the real vocabulary size and real prompts tokenize into a few tokens.

Values: normal(0, 0.02) for matrices and embeddings, small noise around the neutral value
for norms (Gemma norms ~0, SigLIP LayerNorm weights ~1) and biases. A fixed seed makes
the output byte-identical from run to run.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_models import BENCH_MODELS

# --- shapes of PaliGemma 2 3B at 224 px (the design doc, section 1) --------------------
V_HIDDEN, V_INTER, V_LAYERS, V_HEADS, PATCH, IMAGE_SIZE = 1152, 4304, 27, 16, 14, 224
T_HIDDEN, T_INTER, T_LAYERS, T_HEADS, T_KV_HEADS, HEAD_DIM = 2304, 9216, 26, 8, 4, 256
VOCAB_ROWS = 257216  # embedding rows (the tokenizer has 257153 pieces incl. <image>)
N_POSITIONS = (IMAGE_SIZE // PATCH) ** 2  # 256
IMAGE_TOKEN_ID = 257152
LOC_START, SEG_START = 256000, 257024

STD = 0.02
SHARD_BYTES = 2_000_000_000


@dataclass(frozen=True)
class Spec:
    name: str
    shape: tuple[int, ...]
    mean: float = 0.0
    std: float = STD

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return 2 * self.numel


def tensor_specs() -> list[Spec]:
    """Every tensor of the checkpoint, in the order they are written."""
    specs: list[Spec] = []
    t = "language_model.model."
    specs.append(Spec(t + "embed_tokens.weight", (VOCAB_ROWS, T_HIDDEN)))
    q, kv = T_HEADS * HEAD_DIM, T_KV_HEADS * HEAD_DIM
    for i in range(T_LAYERS):
        p = f"{t}layers.{i}."
        specs += [
            Spec(p + "input_layernorm.weight", (T_HIDDEN,), 0.0, 0.05),
            Spec(p + "self_attn.q_proj.weight", (q, T_HIDDEN)),
            Spec(p + "self_attn.k_proj.weight", (kv, T_HIDDEN)),
            Spec(p + "self_attn.v_proj.weight", (kv, T_HIDDEN)),
            Spec(p + "self_attn.o_proj.weight", (T_HIDDEN, q)),
            Spec(p + "post_attention_layernorm.weight", (T_HIDDEN,), 0.0, 0.05),
            Spec(p + "pre_feedforward_layernorm.weight", (T_HIDDEN,), 0.0, 0.05),
            Spec(p + "mlp.gate_proj.weight", (T_INTER, T_HIDDEN)),
            Spec(p + "mlp.up_proj.weight", (T_INTER, T_HIDDEN)),
            Spec(p + "mlp.down_proj.weight", (T_HIDDEN, T_INTER)),
            Spec(p + "post_feedforward_layernorm.weight", (T_HIDDEN,), 0.0, 0.05),
        ]
    specs.append(Spec(t + "norm.weight", (T_HIDDEN,), 0.0, 0.05))
    specs += [
        Spec("multi_modal_projector.linear.weight", (T_HIDDEN, V_HIDDEN)),
        Spec("multi_modal_projector.linear.bias", (T_HIDDEN,)),
    ]
    v = "vision_tower."
    specs += [
        Spec(v + "embeddings.patch_embedding.weight", (V_HIDDEN, 3, PATCH, PATCH)),
        Spec(v + "embeddings.patch_embedding.bias", (V_HIDDEN,)),
        Spec(v + "embeddings.position_embedding.weight", (N_POSITIONS, V_HIDDEN)),
    ]
    for i in range(V_LAYERS):
        p = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += [Spec(f"{p}self_attn.{proj}.weight", (V_HIDDEN, V_HIDDEN)),
                      Spec(f"{p}self_attn.{proj}.bias", (V_HIDDEN,))]
        specs += [
            Spec(p + "layer_norm1.weight", (V_HIDDEN,), 1.0, 0.05),
            Spec(p + "layer_norm1.bias", (V_HIDDEN,)),
            Spec(p + "layer_norm2.weight", (V_HIDDEN,), 1.0, 0.05),
            Spec(p + "layer_norm2.bias", (V_HIDDEN,)),
            Spec(p + "mlp.fc1.weight", (V_INTER, V_HIDDEN)),
            Spec(p + "mlp.fc1.bias", (V_INTER,)),
            Spec(p + "mlp.fc2.weight", (V_HIDDEN, V_INTER)),
            Spec(p + "mlp.fc2.bias", (V_HIDDEN,)),
        ]
    specs += [
        Spec(v + "post_layernorm.weight", (V_HIDDEN,), 1.0, 0.05),
        Spec(v + "post_layernorm.bias", (V_HIDDEN,)),
    ]
    return specs


def shard(specs: list[Spec]) -> list[list[Spec]]:
    shards: list[list[Spec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def bf16_chunks(spec: Spec, rng: np.random.Generator, chunk: int) -> Iterator[bytes]:
    """The tensor's values as bf16 bytes (round to nearest even), ``chunk`` at a time."""
    left = spec.numel
    while left:
        n = min(chunk, left)
        x = rng.standard_normal(n, dtype=np.float32)
        x *= spec.std
        if spec.mean:
            x += spec.mean
        u = x.view(np.uint32)
        u += 0x7FFF + ((u >> 16) & 1)
        yield (u >> 16).astype("<u2").tobytes()
        left -= n


def write_shard(path: Path, specs: list[Spec], rng: np.random.Generator, chunk: int) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in specs:
        header[spec.name] = {"dtype": "BF16", "shape": list(spec.shape),
                             "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for spec in specs:
            for data in bf16_chunks(spec, rng, chunk):
                f.write(data)
    tmp.replace(path)


# --- tokenizer ----------------------------------------------------------------------

WORDS = """
a an the of and or in on at to from with without by for as is are was were be been this
that these those there here it its they them he she his her we you i my your our their
what which who whom whose where when why how many much more most some any all each every
no not yes one two three four five six seven eight nine ten first second last left right
top bottom front back side middle center near next behind under above over inside outside
between around image picture photo photograph scene view shows showing shown see seen can
could would should will may might do does did done has have had having make made get got
caption cap describe description answer question detect segment ocr text word words letter
letters number numbers sign label name title page line lines color colour colors red blue
green yellow white black brown gray grey pink purple orange dark light bright small large
big little tall short long wide old new young man woman men women person people child
children boy girl baby dog dogs cat cats bird birds horse cow sheep animal animals car cars
bus truck train plane boat bicycle bike motorcycle road street city building buildings
house houses tree trees grass field sky cloud clouds water river lake sea ocean beach sand
mountain mountains snow rock rocks flower flowers plant plants table chair bed room window
door wall floor kitchen food plate cup bottle glass bowl pizza cake apple banana orange
sandwich phone laptop computer screen book books clock bag hat shirt shoe shoes dress
sitting standing walking running riding playing eating holding wearing looking lying
parked flying swimming sleeping smiling talking using cutting carrying covered filled
group couple pair several lot lots background foreground area part piece kind type way
day night time year today sunny cloudy rainy wooden metal plastic stone paper empty full
open closed high low hot cold up down out off into onto through while during before after
en de fr es it pt nl pl ru uk cs da el fi fil he hi hr hu id ja ko mi no ro sv sw te th tr
vi zh ar bn fa
""".split()  # noqa: SIM905
PUNCT = list(".,;:!?'\"()[]{}-_/\\&%$#@*+=<>|~`^")


def synthetic_pieces(n: int, taken: set[str], rng: np.random.Generator) -> list[str]:
    """``n`` unique made-up pieces (syllable strings, half of them '▁'-prefixed)."""
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s",
              "t", "v", "w", "z", "ch", "sh", "th", "st", "tr", "pl", "br", "gr", "cl"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "ng", "ck", "st", "nd"]
    out: list[str] = []
    seen = set(taken)
    while len(out) < n:
        syllables = int(rng.integers(1, 4))
        word = "".join(
            onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))]
            + codas[rng.integers(len(codas))]
            for _ in range(syllables)
        )
        if rng.random() < 0.1:
            word = word.capitalize()
        piece = ("▁" + word) if rng.random() < 0.5 else word
        if piece not in seen:
            seen.add(piece)
            out.append(piece)
    return out


def build_vocab(seed: int) -> tuple[list[str], list[dict[str, object]]]:
    """(pieces in id order, added_tokens) for 257153 ids."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    # Normal pieces, highest merge priority first: characters, then every prefix of every
    # word with and without '▁' (so sentencepiece-style merging can build whole words),
    # shortest first; then made-up pieces up to id 255999.
    chars = ["▁", "\n", *"abcdefghijklmnopqrstuvwxyz", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
             *"0123456789", *PUNCT]
    prefixes: set[str] = set()
    for word in WORDS:
        for form in (word, "▁" + word, word.capitalize(), "▁" + word.capitalize()):
            for k in range(2, len(form) + 1):
                prefixes.add(form[:k])
    normal = list(dict.fromkeys(chars))
    normal += sorted(prefixes - set(normal), key=lambda s: (len(s), s))
    n_fill = LOC_START - len(specials) - len(byte_pieces) - len(normal)
    rng = np.random.default_rng(seed + 1)
    normal += synthetic_pieces(n_fill, set(normal) | set(specials) | set(byte_pieces), rng)
    locs = [f"<loc{i:04d}>" for i in range(1024)]
    segs = [f"<seg{i:03d}>" for i in range(128)]
    pieces = specials + byte_pieces + normal + locs + segs + ["<image>"]
    assert len(pieces) == IMAGE_TOKEN_ID + 1 and len(set(pieces)) == len(pieces)
    assert pieces[LOC_START] == "<loc0000>" and pieces[SEG_START] == "<seg000>"
    added = [
        {"id": i, "content": pieces[i], "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": i < 4}
        for i in [0, 1, 2, 3, *range(LOC_START, IMAGE_TOKEN_ID + 1)]
    ]
    return pieces, added


def tokenizer_json(seed: int) -> dict[str, object]:
    pieces, added = build_vocab(seed)
    vocab = {piece: i for i, piece in enumerate(pieces)}
    # Merges as transformers' SpmConverter derives them: every split of a normal piece
    # into two normal pieces, ranked by the merged piece's id (= its sentencepiece score).
    normal = set(pieces[4 + 256:LOC_START])
    merges = []
    for piece in pieces[4 + 256:LOC_START]:
        for k in range(1, len(piece)):
            if piece[:k] in normal and piece[k:] in normal:
                merges.append([piece[:k], piece[k:]])
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        # As Gemma's tokenizer.json: spaces become '▁', no dummy prefix.
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "},
                          "behavior": "MergedWithPrevious", "invert": False},
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


# --- configs ------------------------------------------------------------------------


def config_json() -> dict[str, object]:
    layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention"
                   for i in range(T_LAYERS)]
    return {
        "architectures": ["PaliGemmaForConditionalGeneration"],
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
        "dtype": "bfloat16",
        "hidden_size": 2048,
        "image_token_index": IMAGE_TOKEN_ID,
        "model_type": "paligemma",
        "projection_dim": T_HIDDEN,
        "text_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
            "head_dim": HEAD_DIM,
            "hidden_activation": "gelu_pytorch_tanh",
            "hidden_size": T_HIDDEN,
            "initializer_range": 0.02,
            "intermediate_size": T_INTER,
            "layer_types": layer_types,
            "max_position_embeddings": 8192,
            "model_type": "gemma2",
            "num_attention_heads": T_HEADS,
            "num_hidden_layers": T_LAYERS,
            "num_image_tokens": N_POSITIONS,
            "num_key_value_heads": T_KV_HEADS,
            "query_pre_attn_scalar": 256,
            "rms_norm_eps": 1e-06,
            "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
            "sliding_window": 4096,
            "tie_word_embeddings": True,
            "use_cache": True,
            "vocab_size": VOCAB_ROWS,
        },
        "tie_word_embeddings": True,
        "transformers_version": "5.24.0",
        "vision_config": {
            "attention_dropout": 0.0,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": V_HIDDEN,
            "image_size": IMAGE_SIZE,
            "intermediate_size": V_INTER,
            "layer_norm_eps": 1e-06,
            "model_type": "siglip_vision_model",
            "num_attention_heads": V_HEADS,
            "num_channels": 3,
            "num_hidden_layers": V_LAYERS,
            "num_image_tokens": N_POSITIONS,
            "patch_size": PATCH,
            "projection_dim": T_HIDDEN,
            "vision_use_head": False,
        },
        "vocab_size": VOCAB_ROWS,
    }


SIDE_FILES: dict[str, dict[str, object]] = {
    "generation_config.json": {"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
                               "transformers_version": "5.24.0", "use_cache": True},
    "preprocessor_config.json": {
        "do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor", "image_seq_length": N_POSITIONS,
        "processor_class": "PaliGemmaProcessor", "resample": 3,
        "rescale_factor": 1 / 255, "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    },
    "tokenizer_config.json": {"backend": "tokenizers", "bos_token": "<bos>",
                              "eos_token": "<eos>", "pad_token": "<pad>",
                              "unk_token": "<unk>", "tokenizer_class": "GemmaTokenizer",
                              "add_bos_token": False, "add_eos_token": False},
    "special_tokens_map.json": {"bos_token": "<bos>", "eos_token": "<eos>",
                                "pad_token": "<pad>", "unk_token": "<unk>"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCH_MODELS / "pg2-3b-224-random")
    parser.add_argument("--seed", type=int, default=3224)
    parser.add_argument("--chunk", type=int, default=16 << 20,
                        help="values generated at a time (memory ~ 10 bytes each)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    (out / "tokenizer.json").write_text(
        json.dumps(tokenizer_json(args.seed), ensure_ascii=False), encoding="utf-8")
    (out / "config.json").write_text(json.dumps(config_json(), indent=2) + "\n")
    for name, content in SIDE_FILES.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n")
    print(f"tokenizer + configs written ({time.perf_counter() - start:.1f} s)", flush=True)

    specs = tensor_specs()
    shards = shard(specs)
    rng = np.random.default_rng(args.seed)
    weight_map: dict[str, str] = {}
    total = 0
    for k, group in enumerate(shards, start=1):
        name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        write_shard(out / name, group, rng, args.chunk)
        size = sum(s.nbytes for s in group)
        total += size
        weight_map.update({s.name: name for s in group})
        print(f"{name}: {len(group)} tensors, {size / 1e9:.2f} GB "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    index = {"metadata": {"total_size": total},
             "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    n_params = sum(s.numel for s in specs)
    print(f"done: {n_params / 1e9:.3f} B parameters, {total / 1e9:.2f} GB in {len(shards)} "
          f"shards, {time.perf_counter() - start:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
