"""Converter: both layouts, all source dtypes, shards, tokenizer routes, and refusals."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from app.convert.converter import convert_checkpoint
from app.convert.vocab import vocab_from_sentencepiece, vocab_from_tokenizer_json
from app.errors import Cancelled, ConversionError, ModelFolderError
from app.file_digest import file_sha256
from app.model_files import gguf_keys as keys
from app.model_files.gguf_header import read_gguf_header
from app.model_files.manifest import read_manifest
from app.model_files.model_folder import ModelFolder, check_pair
from app.progress import CancelFlag
from conftest import TINY

SRC = TINY / "pg2-tiny-224"


def _read_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> None:
    """A minimal safetensors writer (so the tests need no torch)."""
    header: dict[str, object] = {}
    blobs, offset = [], 0
    for name, array in tensors.items():
        if dtype == "BF16":
            blob = (np.ascontiguousarray(array, np.float32).view(np.uint32) >> 16).astype(
                "<u2").tobytes()
        elif dtype == "F16":
            blob = array.astype("<f2").tobytes()
        else:
            blob = array.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def _load_tensors(folder: Path) -> dict[str, np.ndarray]:
    header, data = _read_safetensors(folder / "model.safetensors")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32"
        out[name] = np.frombuffer(data[begin:end], "<f4").reshape(info["shape"])
    return out


def _copy_checkpoint(dst: Path, tensors: dict[str, np.ndarray] | None = None,
                     dtype: str = "F32", tokenizer: str = "both") -> Path:
    dst.mkdir(parents=True)
    for name in ("config.json", "tokenizer.model", "tokenizer.json"):
        if tokenizer == "both" or name == "config.json" or name == tokenizer:
            shutil.copy(SRC / name, dst / name)
    _write_safetensors(dst / "model.safetensors", tensors or _load_tensors(SRC), dtype)
    return dst


def _other_layout(name: str) -> str:
    """The fixture's layout (``language_model.model.*``, ``vision_tower.*``) -> the one of
    transformers 4.52+ (``model.language_model.*``, ``model.vision_tower.vision_model.*``)."""
    if name.startswith("language_model.model."):
        return "model.language_model." + name.removeprefix("language_model.model.")
    if name.startswith("vision_tower."):
        return "model.vision_tower.vision_model." + name.removeprefix("vision_tower.")
    return "model." + name


def _by_suffix(tensors: dict[str, np.ndarray], suffix: str) -> np.ndarray:
    (name,) = [k for k in tensors if k.endswith(suffix)]
    return tensors[name]


def _gguf_tensors(path: Path) -> dict[str, np.ndarray]:
    return {t.name: np.array(t.data) for t in GGUFReader(path).tensors}


def test_convert_writes_pair_and_manifest(converted) -> None:
    folder = converted("pg2-tiny-224")
    manifest = read_manifest(folder)
    assert manifest.image_size == 224 and manifest.image_tokens == 256
    names = {f.name for f in manifest.files}
    assert {"text-f32.gguf", "mmproj-f32.gguf", "text-f16.gguf", "mmproj-f16.gguf",
            "text-q8_0.gguf", "text-q4_k_m.gguf"} <= names
    for entry in manifest.files:
        path = folder / entry.name
        assert entry.size == path.stat().st_size
        assert entry.sha256 == file_sha256(path)
    assert not list(folder.glob("*.partial"))
    text = read_gguf_header(folder / "text-f16.gguf")
    vision = read_gguf_header(folder / "mmproj-f16.gguf")
    check_pair(text, vision)
    assert text.get("general.architecture") == "gemma2"
    assert vision.get("clip.projector_type") == "janus_pro"
    assert vision.get("clip.use_gelu") is True
    assert text.get(keys.IMAGE_TOKENS) == 256 and text.get(keys.IMAGE_SIZE) == 224
    # One token per embedding row: the vocabulary was padded like the real 257216 rows.
    assert text.get("tokenizer.ggml.tokens") == text.tensors["token_embd.weight"].shape[1]


def test_gemma_norms_get_plus_one_and_siglip_norms_do_not(converted) -> None:
    folder = converted("pg2-tiny-224")
    hf = _load_tensors(SRC)
    text = _gguf_tensors(folder / "text-f32.gguf")
    vision = _gguf_tensors(folder / "mmproj-f32.gguf")
    np.testing.assert_array_equal(
        text["blk.0.attn_norm.weight"],
        _by_suffix(hf, "layers.0.input_layernorm.weight") + 1.0)
    np.testing.assert_array_equal(vision["v.blk.0.ln1.weight"],
                                  _by_suffix(hf, "encoder.layers.0.layer_norm1.weight"))


def test_projector_identity_reproduces_linear_projector(converted) -> None:
    """mm.1(gelu(mm.0 x)) must equal (P x + b) / sqrt(H) — checked with the exact GELU."""
    vision = _gguf_tensors(converted("pg2-tiny-224") / "mmproj-f32.gguf")
    hf = _load_tensors(SRC)
    weight = _by_suffix(hf, "multi_modal_projector.linear.weight")
    bias = _by_suffix(hf, "multi_modal_projector.linear.bias")
    x = np.random.default_rng(0).normal(size=(5, weight.shape[1])).astype(np.float64)

    def gelu(v: np.ndarray) -> np.ndarray:
        return 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v**3)))

    hidden = gelu(x @ vision["mm.0.weight"].T.astype(np.float64) + vision["mm.0.bias"])
    out = hidden @ vision["mm.1.weight"].T.astype(np.float64) + vision["mm.1.bias"]
    expected = (x @ weight.T + bias) / np.sqrt(weight.shape[0])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_both_layouts_and_all_dtypes_give_the_same_model(tmp_path: Path, converted) -> None:
    reference = _gguf_tensors(converted("pg2-tiny-224") / "text-f32.gguf")
    tensors = _load_tensors(SRC)
    old = _copy_checkpoint(tmp_path / "old", {_other_layout(k): v for k, v in tensors.items()})
    convert_checkpoint(old, tmp_path / "old-out", "f32")
    for name, values in _gguf_tensors(tmp_path / "old-out" / "text-f32.gguf").items():
        np.testing.assert_array_equal(values, reference[name])
    # bf16 source: same tensors up to bf16 rounding of the source.
    bf16 = _copy_checkpoint(tmp_path / "bf16", tensors, dtype="BF16")
    convert_checkpoint(bf16, tmp_path / "bf16-out", "bf16")
    got = _gguf_tensors(tmp_path / "bf16-out" / "text-bf16.gguf")
    assert set(got) == set(reference)
    half = _copy_checkpoint(tmp_path / "f16", tensors, dtype="F16")
    convert_checkpoint(half, tmp_path / "f16-out", "f16")
    got = _gguf_tensors(tmp_path / "f16-out" / "text-f16.gguf")
    np.testing.assert_allclose(got["blk.1.ffn_up.weight"].astype(np.float32),
                               reference["blk.1.ffn_up.weight"], rtol=2e-3, atol=1e-4)


def test_sharded_checkpoint_with_index(tmp_path: Path, converted) -> None:
    tensors = _load_tensors(SRC)
    folder = tmp_path / "sharded"
    folder.mkdir()
    for name in ("config.json", "tokenizer.model"):
        shutil.copy(SRC / name, folder / name)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    weight_map = {}
    for shard, members in shards.items():
        _write_safetensors(folder / shard, {n: tensors[n] for n in members})
        weight_map |= dict.fromkeys(members, shard)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    convert_checkpoint(folder, tmp_path / "out", "f32")
    expected = _gguf_tensors(converted("pg2-tiny-224") / "text-f32.gguf")
    got = _gguf_tensors(tmp_path / "out" / "text-f32.gguf")
    assert set(got) == set(expected)
    for name, values in got.items():
        np.testing.assert_array_equal(values, expected[name])


def test_tokenizer_json_route_gives_the_same_vocabulary(tmp_path: Path, converted) -> None:
    """A checkpoint with only tokenizer.json converts to the very same GGUF vocabulary."""
    for name in ("pg2-tiny-224", "pg2-tiny-448"):
        a = vocab_from_sentencepiece(TINY / name / "tokenizer.model")
        b = vocab_from_tokenizer_json(TINY / name / "tokenizer.json")
        assert (a.tokens, a.scores, a.types) == (b.tokens, b.scores, b.types)
        assert (a.bos_id, a.eos_id, a.pad_id, a.unk_id, a.add_space_prefix) == (
            b.bos_id, b.eos_id, b.pad_id, b.unk_id, b.add_space_prefix)
    only_json = _copy_checkpoint(tmp_path / "json", tokenizer="tokenizer.json")
    convert_checkpoint(only_json, tmp_path / "out", "f32")
    with_json = GGUFReader(tmp_path / "out" / "text-f32.gguf")
    with_model = GGUFReader(converted("pg2-tiny-224") / "text-f32.gguf")
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        a, b = with_json.fields[key], with_model.fields[key]
        assert [bytes(a.parts[i]) for i in a.data] == [bytes(b.parts[i]) for i in b.data]
    # <loc> pieces must be USER_DEFINED, or llama.cpp splits them into characters.
    vocab = vocab_from_sentencepiece(SRC / "tokenizer.model")
    assert vocab.types[vocab.tokens.index("<loc0012>")] == 4


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "config.json").write_text('{"model_type": "llama"}'), "not PaliGemma"),
        (lambda d: (d / "tokenizer.model").unlink() or (d / "tokenizer.json").unlink(),
         "no tokenizer"),
        (lambda d: (d / "config.json").unlink(), "no config.json"),
        (lambda d: (d / "model.safetensors").write_bytes(
            (d / "model.safetensors").read_bytes()[:-1000]), "truncated"),
    ],
)
def test_refusals_name_the_problem(tmp_path: Path, mutate, message: str) -> None:
    folder = _copy_checkpoint(tmp_path / "ck")
    mutate(folder)
    with pytest.raises(ConversionError, match=message):
        convert_checkpoint(folder, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.gguf")) if (tmp_path / "out").exists() else True


def test_unknown_tensor_and_shape_mismatch(tmp_path: Path) -> None:
    tensors = _load_tensors(SRC)
    extra = dict(tensors, **{"language_model.model.layers.0.mlp.extra.weight": np.zeros(3)})
    with pytest.raises(ConversionError, match="Unknown tensor"):
        convert_checkpoint(_copy_checkpoint(tmp_path / "a", extra), tmp_path / "out-a")
    bad = dict(tensors)
    name = "language_model.model.layers.1.mlp.up_proj.weight"
    bad[name] = np.zeros((bad[name].shape[0], bad[name].shape[1] + 1), np.float32)
    with pytest.raises(ConversionError, match="Shape mismatch"):
        convert_checkpoint(_copy_checkpoint(tmp_path / "b", bad), tmp_path / "out-b")
    not_pg = {k: v for k, v in tensors.items() if "multi_modal_projector" not in k}
    with pytest.raises(ConversionError, match="lacks"):
        convert_checkpoint(_copy_checkpoint(tmp_path / "c", not_pg), tmp_path / "out-c")


def test_cancelled_conversion_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    cancel = CancelFlag()
    seen = []

    def progress(event) -> None:
        seen.append(event)
        if len(seen) == 5:
            cancel.cancel()

    with pytest.raises(Cancelled):
        convert_checkpoint(SRC, tmp_path / "out", "f32", progress=progress, cancel=cancel)
    assert list((tmp_path / "out").iterdir()) == []


def test_folder_of_another_model_is_refused(tmp_path: Path) -> None:
    convert_checkpoint(SRC, tmp_path / "out", "f16")
    with pytest.raises(ConversionError, match="already holds another model"):
        convert_checkpoint(TINY / "pg2-tiny-448", tmp_path / "out", "f16")


def test_mismatched_pair_is_refused_at_load(tmp_path: Path, converted) -> None:
    convert_checkpoint(TINY / "pg2-tiny-448", tmp_path / "b", "f16")
    text = read_gguf_header(converted("pg2-tiny-224") / "text-f16.gguf")
    with pytest.raises(ModelFolderError, match="different checkpoints"):
        check_pair(text, read_gguf_header(tmp_path / "b" / "mmproj-f16.gguf"))
    truncated = tmp_path / "trunc"
    shutil.copytree(converted("pg2-tiny-224"), truncated)
    data = (truncated / "text-f16.gguf").read_bytes()
    (truncated / "text-f16.gguf").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFolderError, match=r"truncated|damaged"):
        ModelFolder(truncated).resolve("f16")


def test_streaming_in_small_blocks_writes_identical_files(tmp_path: Path, monkeypatch) -> None:
    """Large matrices are streamed in row blocks; the bytes must not depend on the block."""
    from app.convert import gguf_output

    convert_checkpoint(SRC, tmp_path / "whole", "bf16")
    monkeypatch.setattr(gguf_output, "BLOCK_BYTES", 1000)  # a few rows per block
    convert_checkpoint(SRC, tmp_path / "blocks", "bf16")
    for name in ("text-bf16.gguf", "mmproj-bf16.gguf"):
        assert file_sha256(tmp_path / "whole" / name) == file_sha256(tmp_path / "blocks" / name)
