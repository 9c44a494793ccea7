"""The catalog: every PaliGemma 2 checkpoint, with sizes computed like llama.cpp's quantizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.errors import CatalogError, PaliDeskError
from app.model_files.gguf_header import read_gguf_header
from app.models.catalog import (
    CATALOG,
    QUANTS,
    TEXT_HEADER_BYTES,
    VariantDims,
    find,
    tensor_nbytes,
)
from conftest import TINY

# The full-size 3B files of the benchmarks, where bench/bench_models.py says they live.
FULL_3B = Path(os.environ.get("PALIDESK_BENCH_MODELS")
               or Path(__file__).resolve().parent.parent / "bench" / "models") / "pg2-3b-224-gguf"
# The tiny fixtures' shapes (tests/fixtures/README.md): 64-wide rows, so every K-quant
# falls back to a 32-block type and the tied embedding to Q8_0.
TINY_DIMS = VariantDims(64, 128, 4, 2, 1, 32, image_size=224, vocab_rows=1920,
                        vision_hidden=32, vision_intermediate=64, vision_layers=2,
                        vision_heads=2)


@pytest.fixture(scope="module")
def tiny_all_quants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny 224 model converted to F16 and quantized to every offered type."""
    from app.convert.converter import convert_checkpoint
    from app.models.quantize import quantize_folder

    out = tmp_path_factory.mktemp("catalog") / "tiny"
    convert_checkpoint(TINY / "pg2-tiny-224", out, "f16")
    for quant in QUANTS:
        if quant != "F16":
            quantize_folder(out, quant, threads=1)
    return out


def test_catalog_lists_every_published_checkpoint() -> None:
    names = {entry.name for entry in CATALOG}
    expected = {f"paligemma2-{p}-pt-{s}" for p in ("3b", "10b", "28b") for s in (224, 448, 896)}
    expected |= {f"paligemma2-{p}-mix-{s}" for p in ("3b", "10b", "28b") for s in (224, 448)}
    expected |= {"paligemma2-3b-ft-docci-448", "paligemma2-10b-ft-docci-448"}
    assert names == expected
    assert len(CATALOG) == len(names)  # no duplicates


def test_every_entry_is_gated_behind_the_gemma_licence() -> None:
    for entry in CATALOG:
        assert entry.gated
        assert entry.licence == "gemma"
        assert entry.repo_id == f"google/{entry.name}"
        assert entry.params in ("3b", "10b", "28b")
        assert entry.kind in ("pt", "mix", "ft")
        assert entry.image_size in (224, 448, 896)
        assert entry.name.endswith(str(entry.image_size))
        assert entry.description


def test_entries_carry_the_size_table() -> None:
    entry = find("paligemma2-10b-mix-448")
    d = entry.dims
    assert (d.hidden, d.intermediate, d.layers, d.heads, d.kv_heads, d.head_dim) == (
        3584, 14336, 42, 16, 8, 256)
    assert entry.image_tokens == 1024
    assert find("paligemma2-28b-pt-896").image_tokens == 4096
    assert find("paligemma2-28b-pt-896").dims.head_dim == 128
    assert find("paligemma2-3b-pt-224").image_tokens == 256


def test_find_accepts_owner_and_case() -> None:
    assert find("google/PaliGemma2-3B-Mix-224") is find("paligemma2-3b-mix-224")


def test_find_suggests_close_names() -> None:
    with pytest.raises(CatalogError, match="Did you mean paligemma2-3b-mix-224") as info:
        find("paligemma2-3b-mix-225")
    assert isinstance(info.value, PaliDeskError)
    with pytest.raises(CatalogError, match="Known names"):
        find("llava")


def test_parameter_count_matches_a_hand_count() -> None:
    # 3B: decoder 2,617,143,552 (tied embedding counted once) + SigLIP-So400m at 224 px
    # 412,442,352 + projector 2,656,512; the full-size random checkpoint's bf16 shards
    # hold 6,064,484,832 bytes of tensors (6,064,577,464 with safetensors headers).
    assert find("paligemma2-3b-pt-224").parameter_count() == 3_032_242_416
    entry = find("paligemma2-3b-pt-224")
    assert entry.download_bytes() == 3_032_242_416 * 2 + 4_320_000


def test_sizes_grow_with_parameters_and_resolution() -> None:
    for kind, size in (("pt", 224), ("pt", 448), ("pt", 896), ("mix", 224), ("mix", 448)):
        small, mid, large = (find(f"paligemma2-{p}-{kind}-{size}") for p in ("3b", "10b", "28b"))
        assert small.download_bytes() < mid.download_bytes() < large.download_bytes()
        for quant in QUANTS:
            assert small.quant_file_bytes(quant) < mid.quant_file_bytes(quant) \
                < large.quant_file_bytes(quant)
    # Larger images only add position embeddings to the vision file.
    assert find("paligemma2-3b-pt-224").vision_file_bytes() \
        < find("paligemma2-3b-pt-896").vision_file_bytes()


def test_sizes_shrink_with_quantization() -> None:
    for entry in CATALOG:
        sizes = [entry.quant_file_bytes(q) for q in QUANTS if q != "BF16"]
        assert sizes == sorted(sizes, reverse=True)
        assert len(set(sizes)) == len(sizes)
        assert entry.quant_file_bytes("BF16") == entry.quant_file_bytes("F16")
        assert entry.quant_file_bytes("F16") > entry.download_bytes() - 1e8  # ~2 B/param


def test_unknown_quantization_is_refused() -> None:
    with pytest.raises(CatalogError, match="Unknown quantization"):
        find("paligemma2-3b-pt-224").text_file_bytes("Q1_X")


def test_q4_k_m_mixes_types_like_llama_cpp() -> None:
    tensors = find("paligemma2-3b-pt-224").dims.text_tensors("Q4_K_M")
    assert tensors["token_embd.weight"].ggml_type.name == "Q6_K"  # tied: the output's type
    assert tensors["output_norm.weight"].ggml_type.name == "F32"
    more_bits = [i for i in range(26) if tensors[f"blk.{i}.attn_v.weight"].ggml_type.name == "Q6_K"]
    assert more_bits == [0, 1, 2, 5, 8, 11, 14, 17, 20, 22, 23, 24, 25]
    assert tensors["blk.3.ffn_down.weight"].ggml_type.name == "Q4_K"
    assert tensors["blk.3.attn_q.weight"].ggml_type.name == "Q4_K"


@pytest.mark.parametrize("quant", QUANTS)
def test_tiny_files_have_exactly_the_computed_tensors(tiny_all_quants: Path, quant: str) -> None:
    header = read_gguf_header(tiny_all_quants / f"text-{quant.lower()}.gguf")
    computed = TINY_DIMS.text_tensors(quant)
    assert set(header.tensors) == set(computed)
    for name, tensor in header.tensors.items():
        assert tensor.shape == computed[name].shape, name
        assert tensor.ggml_type == computed[name].ggml_type, (name, quant)
    actual = sum(tensor_nbytes(t.shape, t.ggml_type) for t in header.tensors.values())
    assert actual == sum(spec.nbytes for spec in computed.values())


def test_tiny_fallbacks_apply(tiny_all_quants: Path) -> None:
    # 64 columns: no 256-block K-quant fits, so llama.cpp falls back (Q4_K -> Q5_0, ...).
    tensors = TINY_DIMS.text_tensors("Q4_K_M")
    assert tensors["token_embd.weight"].ggml_type.name == "Q8_0"
    assert tensors["blk.1.attn_q.weight"].ggml_type.name == "Q5_0"
    assert tensors["blk.0.attn_v.weight"].ggml_type.name == "Q5_0"
    assert tensors["blk.3.attn_v.weight"].ggml_type.name == "Q8_0"  # more bits: Q6_K -> Q8_0
    assert TINY_DIMS.text_tensors("Q2_K")["blk.1.attn_q.weight"].ggml_type.name == "Q4_0"
    assert TINY_DIMS.text_tensors("Q5_K_M")["blk.1.attn_q.weight"].ggml_type.name == "Q5_1"


def test_tiny_vision_file_has_exactly_the_computed_tensors(tiny_all_quants: Path) -> None:
    header = read_gguf_header(tiny_all_quants / "mmproj-f16.gguf")
    computed = TINY_DIMS.vision_tensors()
    assert set(header.tensors) == set(computed)
    for name, tensor in header.tensors.items():
        assert (tensor.shape, tensor.ggml_type) == (computed[name].shape, computed[name].ggml_type)


@pytest.mark.skipif(not FULL_3B.exists(), reason="full-size 3B files not on this machine")
@pytest.mark.parametrize("file_name", ["text-f16.gguf", "text-q8_0.gguf", "text-q4_k_m.gguf",
                                       "mmproj-f16.gguf"])
def test_full_size_3b_files_match_within_a_thousandth(file_name: str) -> None:
    entry = find("paligemma2-3b-pt-224")
    path = FULL_3B / file_name
    quant = path.stem.split("-", 1)[1].upper()
    computed = (entry.vision_file_bytes() if file_name.startswith("mmproj")
                else entry.text_file_bytes(quant))
    assert abs(computed / path.stat().st_size - 1) < 1e-3
    if file_name.startswith("text"):
        header = read_gguf_header(path)
        tensors = entry.dims.text_tensors(quant)
        assert {n: t.ggml_type for n, t in header.tensors.items()} == {
            n: int(s.ggml_type) for n, s in tensors.items()}
        assert min(t.offset for t in header.tensors.values()) in (
            TEXT_HEADER_BYTES, TEXT_HEADER_BYTES - 32)
