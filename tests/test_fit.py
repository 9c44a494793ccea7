"""The memory estimate, the automatic choice of quantization and GPU layers, ``palidesk fit``."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import CatalogError
from app.hardware import GpuInfo, HardwareReport, SystemInfo
from app.model_files.gguf_header import read_gguf_header
from app.models.catalog import find, tensor_nbytes
from app.models.fit_choice import CPU_RAM_SHARE, choose, fit_badge, layout_speeds
from app.models.fit_estimate import (
    SAFETY_MARGIN,
    ContextNeeds,
    estimate,
    kv_cells,
    kv_layer_bytes,
    layout_for,
    text_compute_bytes,
    vision_compute_bytes,
)
from conftest import TINY

GIB = 1024**3
MIB = 1024**2
ROOT = Path(__file__).resolve().parent.parent


def machine(gpu_free_gib: float | None, ram_gib: float, offload: bool = True,
            name: str = "RTX 3070", gpu_total_gib: float = 8.0) -> HardwareReport:
    gpus = ()
    if gpu_free_gib is not None:
        gpus = (GpuInfo(0, name, int(gpu_total_gib * GIB), int(gpu_free_gib * GIB), 0, 0,
                        "555.42", (8, 6), None),)
    system = SystemInfo(int(2 * ram_gib * GIB), int(ram_gib * GIB), 8, "test cpu", "AVX2")
    return HardwareReport(gpus, None, system, offload)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.convert.converter import convert_checkpoint
    from app.models.quantize import quantize_folder

    out = tmp_path_factory.mktemp("fit") / "tiny"
    convert_checkpoint(TINY / "pg2-tiny-224", out, "f16")
    quantize_folder(out, "Q4_K_M", threads=1)
    return out


# --- context and KV cache --------------------------------------------------------------


def test_context_matches_the_engine(converted) -> None:
    # What llama.cpp actually created for the engine, not numbers copied by hand.
    import llama_cpp

    from app.engine.engine import Engine, EngineConfig
    from app.model_files.model_folder import ModelFolder

    for name, max_new in (("pg2-tiny-224", 512), ("pg2-tiny-448", 1000)):
        config = EngineConfig(max_new_tokens_limit=max_new)
        engine = Engine()
        engine.load(ModelFolder(converted(name)).resolve("F16"), config)
        try:
            needs = ContextNeeds(engine.pair.image_tokens, config.max_prompt_tokens,
                                 config.max_new_tokens_limit)
            assert llama_cpp.llama_n_ubatch(engine._ctx) == needs.n_ubatch
            assert llama_cpp.llama_n_batch(engine._ctx) == needs.n_ubatch
            assert llama_cpp.llama_n_ctx(engine._ctx) == needs.n_ctx
        finally:
            engine.close()
    # The estimate's defaults are the engine's defaults.
    defaults = EngineConfig()
    flash = inspect.signature(text_compute_bytes).parameters["flash_attention"].default
    assert flash is defaults.flash_attention
    assert (ContextNeeds(256).prompt_tokens, ContextNeeds(256).max_new_tokens) == (
        defaults.max_prompt_tokens, defaults.max_new_tokens_limit)
    assert ContextNeeds(256).n_outputs == 1  # the engine sets n_outputs_max = 1
    assert ContextNeeds(256, outputs=None).n_outputs == 512


def measured_context(image_tokens: int, outputs: int | None = 1) -> ContextNeeds:
    """The contexts llama.cpp's figures below were measured with: 512 new tokens (the
    window now reserves 2048; the formulas are the same)."""
    return ContextNeeds(image_tokens, max_new_tokens=512, outputs=outputs)


def test_kv_cache_by_hand() -> None:
    # 3B at 224 px: 26 layers x (K + V) x 4 KV heads x 256 x 1024 cells x 2 bytes.
    text = layout_for(find("paligemma2-3b-mix-224"), "Q4_K_M").text
    assert sum(kv_layer_bytes(text, measured_context(256))) == 26 * 2 * 4 * 256 * 1024 * 2
    # 10B at 448 px: 42 x 2 x 8 x 256 x 1792 x 2 (= 588 MiB, what llama.cpp reports).
    text = layout_for(find("paligemma2-10b-mix-448"), "Q4_K_M").text
    kv = sum(kv_layer_bytes(text, measured_context(1024)))
    assert kv == 42 * 2 * 8 * 256 * 1792 * 2 == 588 * MIB
    # 28B at 896 px: head_dim 128, 4864 cells.
    text = layout_for(find("paligemma2-28b-pt-896"), "Q4_K_M").text
    assert sum(kv_layer_bytes(text, measured_context(4096))) == 46 * 2 * 16 * 128 * 4864 * 2


def test_sliding_window_cells() -> None:
    text = layout_for(find("paligemma2-3b-pt-896"), "Q8_0").text
    context = measured_context(4096)
    # PaliDesk's contexts never exceed n_swa + n_ubatch: both caches get n_ctx cells.
    assert kv_cells(text, context, swa_full=False) == (4864, 4864)
    assert kv_cells(text, context, swa_full=True) == (4864, 4864)
    # A short window shows the rule: GGML_PAD(min(n_ctx, n_swa + n_ubatch), 256).
    short = dataclasses.replace(text, sliding_window=256)
    assert kv_cells(short, measured_context(256), swa_full=False) == (1024, 768)
    per_cell = 2 * text.kv_heads * text.head_dim * 2
    layers = kv_layer_bytes(short, measured_context(256), swa_full=False)
    assert layers[0] == 768 * per_cell  # even layers slide
    assert layers[1] == 1024 * per_cell  # odd layers attend fully


# --- compute buffers (values llama.cpp reported with no_alloc, see docs/fit-estimate.md) --


@pytest.mark.parametrize(("name", "image_tokens", "outputs", "mib"), [
    ("paligemma2-3b-pt-224", 256, None, 511.38),
    ("paligemma2-3b-pt-224", 256, 1, 73.52),
    ("paligemma2-10b-pt-448", 1024, None, 1290.94),
    ("paligemma2-10b-pt-448", 1024, 1, 291.30),
    ("paligemma2-28b-pt-896", 4096, None, 4423.20),
    ("paligemma2-28b-pt-896", 4096, 1, 2214.42),
])
def test_text_compute_formula_matches_llama_cpp(
    name: str, image_tokens: int, outputs: int | None, mib: float
) -> None:
    # Flash attention on (llama.cpp's CPU default).
    text = layout_for(find(name), "F16").text
    context = measured_context(image_tokens, outputs=outputs)
    got = text_compute_bytes(text, context, flash_attention=True) / MIB
    assert got == pytest.approx(mib, rel=1e-3)


# Measured with flash attention off (the engine's decoder since issue 10), no_alloc,
# bench/fit_accuracy.py's sparse shapes: (name, image tokens, outputs, MiB).
@pytest.mark.parametrize(("name", "image_tokens", "outputs", "mib"), [
    ("paligemma2-3b-pt-224", 256, 1, 87.51),
    ("paligemma2-3b-pt-448", 1024, 1, 226.3),
    ("paligemma2-3b-pt-896", 4096, 1, 1058.35),
    ("paligemma2-10b-pt-224", 256, 1, 125.0),
    ("paligemma2-10b-pt-448", 1024, 1, 320.03),
    ("paligemma2-10b-pt-896", 4096, 1, 1904.1),
    ("paligemma2-28b-pt-224", 256, 1, 279.0),
    ("paligemma2-28b-pt-448", 1024, 1, 705.0),
    ("paligemma2-28b-pt-896", 4096, 1, 3247.1),
    ("paligemma2-3b-pt-224", 256, None, 511.38),
    ("paligemma2-10b-pt-448", 1024, None, 1308.44),
    ("paligemma2-28b-pt-896", 4096, None, 4423.2),
])
def test_compute_without_flash_attention_is_never_underestimated(
    name: str, image_tokens: int, outputs: int | None, mib: float
) -> None:
    text = layout_for(find(name), "F16").text
    got = text_compute_bytes(text, measured_context(image_tokens, outputs=outputs)) / MIB
    assert mib * 0.999 <= got <= mib * 1.15  # at least what llama.cpp takes, at most 15% more


@pytest.mark.parametrize(("name", "mib"), [
    ("paligemma2-3b-pt-224", 7.58), ("paligemma2-3b-pt-896", 121.25),
    ("paligemma2-10b-pt-448", 32.0), ("paligemma2-28b-pt-896", 144.0),
])
def test_vision_compute_formula_matches_mtmd(name: str, mib: float) -> None:
    vision = layout_for(find(name), "F16").vision
    assert vision_compute_bytes(vision) / MIB == pytest.approx(mib, rel=1e-3)


# --- the estimate ------------------------------------------------------------------------


def test_folder_estimate_uses_the_gguf_header(tiny_folder: Path) -> None:
    header = read_gguf_header(tiny_folder / "text-q4_k_m.gguf")
    file_bytes = sum(tensor_nbytes(t.shape, t.ggml_type) for t in header.tensors.values())
    b = estimate(tiny_folder, "Q4_K_M", 0, measured_context(256))
    assert b.weights_cpu == file_bytes
    assert b.weights_gpu == b.total_gpu == b.margin_gpu == 0
    assert b.kv_cache == 4 * 2 * 1 * 32 * 1024 * 2  # tiny: 4 layers, 1 KV head of 32
    vision = read_gguf_header(tiny_folder / "mmproj-f16.gguf")
    vision_bytes = sum(tensor_nbytes(t.shape, t.ggml_type) for t in vision.tensors.values())
    assert b.vision > vision_bytes
    parts = b.weights_cpu + b.vision + b.kv_cache + b.compute
    assert b.total_cpu == parts + b.margin
    assert b.margin == int(parts * SAFETY_MARGIN.fraction) + SAFETY_MARGIN.cpu_bytes


def test_default_context_comes_from_the_model(tiny_folder: Path) -> None:
    assert estimate(tiny_folder, "F16", 0) == estimate(tiny_folder, "F16", 0, ContextNeeds(256))


def test_offloaded_layers_move_to_the_gpu() -> None:
    entry = find("paligemma2-3b-mix-224")
    layout = layout_for(entry, "Q4_K_M")
    text = layout.text
    cpu = estimate(entry, "Q4_K_M", 0)
    full = estimate(entry, "Q4_K_M", -1)
    one = estimate(entry, "Q4_K_M", 1)
    ten = estimate(entry, "Q4_K_M", 10)
    assert full.gpu_layers == full.layer_count == 27
    # The input embedding stays on the CPU; an offloaded output is a copy of it.
    assert full.weights_cpu == text.token_embd_bytes
    output = text.token_embd_bytes + text.output_norm_bytes
    assert full.weights_gpu == sum(text.layer_bytes) + output
    assert one.weights_gpu == text.token_embd_bytes + text.output_norm_bytes
    assert one.kv_gpu == 0
    assert ten.weights_gpu == sum(text.layer_bytes[-9:]) + one.weights_gpu
    assert ten.kv_gpu == 9 * full.kv_cache // 26
    assert full.kv_gpu == full.kv_cache
    assert cpu.total_gpu == 0 < one.total_gpu < ten.total_gpu < full.total_gpu
    assert full.vision_gpu == full.vision and cpu.vision_gpu == 0
    assert estimate(entry, "Q4_K_M", 99) == full


# --- the choice --------------------------------------------------------------------------


def test_big_gpu_takes_the_best_quant_entirely() -> None:
    hw = machine(78.0, 64, name="NVIDIA H100", gpu_total_gib=80.0)
    choice = choose(find("paligemma2-10b-mix-448"), hw)
    assert (choice.quant, choice.gpu_layers, choice.device) == ("F16", -1, "gpu")
    assert choice.fits
    spare = 78.0 * GIB - choice.breakdown.total_gpu
    assert choice.sentence == (
        f"F16 fits in 78.0 GB free of 80.0 GB on NVIDIA H100 with {spare / GIB:.1f} GB to spare.")


def test_gpu_choice_takes_the_best_quant_that_fits() -> None:
    entry = find("paligemma2-3b-mix-224")
    hw = machine(3.5, 32)
    choice = choose(entry, hw)
    assert choice.device == "gpu"
    assert choice.breakdown.total_gpu <= 3.5 * GIB
    order = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"]
    better = order[: order.index(choice.quant)]
    assert better and all(estimate(entry, q, -1).total_gpu > 3.5 * GIB for q in better)
    assert choice.sentence.startswith(f"{choice.quant} fits in 3.5 GB free of 8.0 GB on RTX 3070")


def test_small_gpu_gets_a_partial_offload() -> None:
    entry = find("paligemma2-10b-mix-224")
    hw = machine(4.0, 32)
    choice = choose(entry, hw)
    b = choice.breakdown
    assert choice.device == "partial"
    assert 0 < choice.gpu_layers == b.gpu_layers < b.layer_count == 43
    assert b.total_gpu <= 4.0 * GIB
    # One more layer would not fit.
    assert estimate(entry, choice.quant, choice.gpu_layers + 1).total_gpu > 4.0 * GIB
    assert f"{choice.gpu_layers} of 43 layers" in choice.sentence
    assert "RTX 3070" in choice.sentence


def test_no_gpu_prefers_q4_k_m_when_q8_0_would_be_slow() -> None:
    # The 10B reads 9 GB per token at Q8_0 (~2 tokens/s estimated): Q4_K_M, and why.
    entry = find("paligemma2-10b-mix-224")
    choice = choose(entry, machine(None, 22.9))
    assert (choice.quant, choice.device, choice.gpu_layers) == ("Q4_K_M", "cpu", 0)
    assert choice.sentence.startswith("No usable NVIDIA GPU was found, so Q4_K_M runs on the CPU")
    assert "bytes read per token" in choice.sentence
    assert "Q8_0" in choice.sentence and "estimated, under 8" in choice.sentence
    assert "of the 18.3 GB PaliDesk may use (80% of the 22.9 GB available)" in choice.sentence
    assert choice.speeds["Q8_0"].source == "estimated"
    assert choice.speeds["Q4_K_M"].tokens_per_s > choice.speeds["Q8_0"].tokens_per_s


def test_cpu_never_picks_f16_by_default_even_with_room() -> None:
    # Issue 11: F16 of the 10B at 448 px "fits" in 22.9 GB but would crawl.
    choice = choose(find("paligemma2-10b-mix-448"), machine(None, 64))
    assert choice.quant == "Q4_K_M"


def test_fast_cpu_takes_q8_0_and_says_why() -> None:
    # A measured 12 tokens/s for Q8_0 of the 3B is fast enough: near-F16 quality wins.
    choice = choose(find("paligemma2-3b-mix-224"), machine(None, 22.9), measured={"Q8_0": 12.0})
    assert choice.quant == "Q8_0"
    assert "close to F16 in quality and fast enough here (12.0 tokens/s measured here)" \
        in choice.sentence
    assert choice.speeds["Q8_0"].label() == "12.0 tok/s measured here"


def test_measured_figures_change_the_choice_and_say_so() -> None:
    entry = find("paligemma2-3b-mix-224")
    estimated = choose(entry, machine(None, 22.9), measured={})
    assert estimated.quant == "Q4_K_M" and "Measured" not in estimated.sentence
    # 14 tokens/s measured for Q4_K_M implies a bandwidth at which Q8_0 passes 8 tokens/s.
    measured = choose(entry, machine(None, 22.9), measured={"Q4_K_M": 14.0})
    assert measured.quant == "Q8_0"
    assert "Measured speeds here changed the choice from Q4_K_M" in measured.sentence
    assert measured.speeds["Q8_0"].source == "estimated"
    assert measured.speeds["Q8_0"].tokens_per_s == pytest.approx(
        14.0 * layout_speeds([layout_for(entry, "Q8_0")])["Q8_0"].tokens_per_s
        / layout_speeds([layout_for(entry, "Q4_K_M")])["Q4_K_M"].tokens_per_s, rel=1e-6)


def test_leaves_a_share_of_ram_free() -> None:
    entry = find("paligemma2-10b-mix-224")
    need = estimate(entry, "Q4_K_M", 0).total_cpu
    # Enough for Q4_K_M in all of the RAM, but not in the 80 % PaliDesk uses.
    ram_gib = need / GIB / CPU_RAM_SHARE * 0.99
    choice = choose(entry, machine(None, ram_gib))
    assert choice.quant != "Q4_K_M" and choice.device == "cpu"
    assert choice.breakdown.total_cpu <= CPU_RAM_SHARE * ram_gib * GIB
    assert choice.quant == "Q4_0"  # the best quality left, though slow
    assert fit_badge(entry, "Q4_K_M", machine(None, ram_gib)) == "too large"


def test_speed_file_beside_the_manifest_is_used(tiny_folder: Path, tmp_path: Path) -> None:
    import shutil

    from app.models.measured_speed import QuantSpeed, record_speed

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_folder, folder)
    record_speed(folder, "Q4_K_M", QuantSpeed(decode_tokens_per_s=321.0))
    choice = choose(folder, machine(None, 16))
    assert choice.speeds["Q4_K_M"].label() == "321.0 tok/s measured here"
    assert choice.speeds["F16"].source == "estimated"


def test_cpu_only_build_says_so() -> None:
    choice = choose(find("paligemma2-3b-mix-224"), machine(7.6, 32, offload=False))
    assert choice.device == "cpu"
    assert choice.sentence.startswith("This llama.cpp build cannot use the GPU")


def test_nothing_fits_says_too_large() -> None:
    choice = choose(find("paligemma2-28b-pt-896"), machine(2.0, 4.0))
    assert choice.device == "none" and not choice.fits
    assert choice.quant == "Q2_K"
    assert "too large for this machine" in choice.sentence
    assert "more than the 3.2 GB PaliDesk may use (80% of the 4.0 GB available)" \
        in choice.sentence


def test_available_quants_limit_the_choice(tiny_folder: Path) -> None:
    hw = machine(None, 16)
    assert choose(tiny_folder, hw).quant == "Q4_K_M"  # not F16 on a CPU, however small
    assert choose(tiny_folder, hw, available_quants=["f16"]).quant == "F16"  # the only one
    entry = find("paligemma2-3b-mix-224")
    assert choose(entry, hw, available_quants=["Q2_K", "Q8_0"]).quant == "Q8_0"
    with pytest.raises(CatalogError, match="no text model to choose from"):
        choose(entry, hw, available_quants=["Q1_X"])


def test_badges() -> None:
    entry = find("paligemma2-10b-mix-224")
    assert fit_badge(entry, "Q4_K_M", machine(24.0, 32)) == "fits on GPU"
    assert fit_badge(entry, "F16", machine(8.0, 32)) == "partial offload"
    assert fit_badge(entry, "Q4_K_M", machine(None, 32)) == "CPU only"
    assert fit_badge(entry, "F16", machine(None, 8)) == "too large"


# --- palidesk fit --------------------------------------------------------------------------


def palidesk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_cli_json_is_one_object() -> None:
    done = palidesk("fit", "paligemma2-3b-mix-224", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["variant"] == "paligemma2-3b-mix-224"
    assert record["source"] == "catalog"
    assert record["quant"] in ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M",
                               "Q2_K")
    assert record["device"] in ("gpu", "partial", "cpu", "none")
    assert isinstance(record["gpu_layers"], int)
    assert record["sentence"].endswith(".")
    assert {"weights_gpu", "weights_cpu", "vision", "kv_cache", "compute", "margin",
            "total_gpu", "total_cpu"} <= set(record["breakdown"])
    assert record["context"]["n_ctx"] == 2560  # 256 + 256 + the 2048 the window reserves
    assert set(record["badges"]) >= {"F16", "Q4_K_M"}
    speeds = record["cpu_tokens_per_s"]
    assert speeds["Q4_K_M"]["source"] == "estimated"
    assert speeds["Q4_K_M"]["value"] > speeds["Q8_0"]["value"] > speeds["F16"]["value"] > 0


def test_cli_text_and_folder(tiny_folder: Path) -> None:
    done = palidesk("fit", tiny_folder, "--image-tokens", "1024")
    assert done.returncode == 0, done.stderr
    assert "1024 image + 256 prompt + 2048 new tokens (n_ctx 3328)" in done.stdout
    for word in ("choice:", "text weights", "KV cache", "compute", "margin", "total"):
        assert word in done.stdout
    assert "decode on the CPU (estimated" in done.stdout
    assert re.search(r"Q4_K_M +CPU only +~[0-9.]+ tok/s estimated", done.stdout)
    assert done.stdout.rstrip().endswith(".")


def test_cli_unknown_name_suggests() -> None:
    done = palidesk("fit", "paligemma2-3b-mix-225")
    assert done.returncode == 1
    assert "Did you mean paligemma2-3b-mix-224" in done.stderr


def test_the_estimate_reads_the_decoder_shape_the_converter_wrote(converted) -> None:
    # One DecoderShape: what the converter took from the checkpoint is what the
    # estimate reads back from the GGUF header, field for field.
    from app.convert.checkpoint import open_checkpoint
    from app.model_files.decoder_shape import shape_fields

    with open_checkpoint(TINY / "pg2-tiny-224") as checkpoint:
        written = shape_fields(checkpoint.text)
    assert shape_fields(layout_for(converted("pg2-tiny-224"), "F16").text) == written
