"""Reference parity: converter + runtime against transformers on the tiny random models.

The reference outputs come from tests/fixtures/make_tiny_paligemma.py (transformers 5.24,
float32, eager attention). Tolerances are set from measurement (docs/engine.md):
- first-step logits: max |ours - reference| was 0.37-0.52% of the largest |logit| (0.065-
  0.104 absolute) at F32 and F16 (ggml's CPU GELU goes through a float16 table, in SigLIP
  and in Gemma); we allow 1%.
- image features after the projector: max relative error 8.5e-4 - 9.2e-4; we allow 2e-3.
- greedy tokens: identical for the first 20 steps of every stored case (cases are stored
  only when every reference margin there is >= 0.2, twice the measured logit noise).
- quantized text models: teacher-forced top-1 agreement, asserted at a floor below what
  was measured (tiny 64-wide rows make llama.cpp fall back from K-quants for some
  tensors, so these are rougher than on real models).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.engine.engine import Engine, EngineConfig
from app.engine.events import GenerationOptions
from app.model_files.model_folder import ModelFolder
from conftest import IMAGES

MODELS = ("pg2-tiny-224", "pg2-tiny-448")
LOGIT_TOLERANCE = 0.01  # fraction of the largest |logit|
FEATURE_TOLERANCE = 2e-3  # fraction of the largest |feature|
PARITY_STEPS = 20
AGREEMENT_FLOOR = {"Q8_0": 0.85, "Q4_K_M": 0.55}


def _cases(reference: dict, model: str) -> list[dict]:
    return [c for c in reference["cases"] if c["model"] == model]


@pytest.fixture(scope="module")
def engines(converted):
    """(model, quant) -> loaded Engine, built on first use and closed at the end."""
    loaded: dict[tuple[str, str], Engine] = {}

    def get(model: str, quant: str) -> Engine:
        if (model, quant) not in loaded:
            engine = Engine()
            engine.load(ModelFolder(converted(model)).resolve(quant), EngineConfig(threads=1))
            loaded[(model, quant)] = engine
        return loaded[(model, quant)]

    yield get
    for engine in loaded.values():
        engine.close()


@pytest.mark.parametrize("quant", ["F32", "F16"])
@pytest.mark.parametrize("model", MODELS)
def test_greedy_tokens_and_logits_match_transformers(
        engines, reference, reference_arrays, model: str, quant: str) -> None:
    engine = engines(model, quant)
    info = reference["models"][model]
    cases = _cases(reference, model)
    assert len(cases) >= 5
    for case in cases:
        image = IMAGES / case["image"]
        # Same pixels and same prompt ids as the reference, before any model maths.
        assert engine.prepare(image).digest == info["image_sha256_resized_rgb"][case["image"]]
        assert engine.prompt_tokens(case["prompt"]) == case["text_ids"]
        result = engine.run(image, case["prompt"],
                            GenerationOptions(max_new_tokens=24, stop_at_eos=False))
        expected = case["generated_ids"]
        assert result.tokens[:PARITY_STEPS] == expected[:PARITY_STEPS], case["id"]
        logits = engine.forced_logits(image, case["prompt"], [])[0]
        ref_logits = reference_arrays[case["arrays"]["first_step_logits"]]
        scale = float(np.abs(ref_logits).max())
        error = float(np.abs(logits - ref_logits).max())
        assert error <= LOGIT_TOLERANCE * scale, f"{case['id']}: {error:.4f} of {scale:.2f}"


@pytest.mark.parametrize("model", MODELS)
def test_image_features_match_the_projector_output(
        engines, reference, reference_arrays, model: str) -> None:
    engine = engines(model, "F16")
    hidden = reference["models"][model]["text_hidden"]
    for image_name in reference["images"]:
        rows, _, _ = engine.image_rows(IMAGES / image_name)
        expected = reference_arrays[f"{model}/{image_name.rsplit('.', 1)[0]}/image_features"]
        assert rows.shape == expected.shape
        # mtmd emits projector output / sqrt(H): the decoder scales every row by sqrt(H).
        error = np.abs(rows * math.sqrt(hidden) - expected).max() / np.abs(expected).max()
        assert error <= FEATURE_TOLERANCE, f"{model}/{image_name}: {error:.2e}"


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_K_M"])
def test_quantized_models_agree_with_the_reference(
        engines, reference, quant: str, capsys) -> None:
    agree = total = 0
    for model in MODELS:
        engine = engines(model, quant)
        for case in _cases(reference, model):
            expected = case["generated_ids"]
            logits = engine.forced_logits(IMAGES / case["image"], case["prompt"], expected[:-1])
            agree += int((logits.argmax(axis=1) == np.array(expected)).sum())
            total += len(expected)
    rate = agree / total
    with capsys.disabled():
        print(f"\n{quant}: teacher-forced top-1 agreement {agree}/{total} = {rate:.3f}")
    assert rate >= AGREEMENT_FLOOR[quant]


def test_decoding_the_prefix_causally_would_be_wrong(engines, reference, reference_arrays):
    """The parity above depends on the non-causal prefix: prove the test would notice."""
    import llama_cpp

    engine = engines("pg2-tiny-224", "F32")
    case = _cases(reference, "pg2-tiny-224")[0]
    original = llama_cpp.llama_set_causal_attn
    try:
        llama_cpp.llama_set_causal_attn = lambda ctx, flag: original(ctx, True)
        logits = engine.forced_logits(IMAGES / case["image"], case["prompt"], [])[0]
    finally:
        llama_cpp.llama_set_causal_attn = original
    ref_logits = reference_arrays[case["arrays"]["first_step_logits"]]
    assert np.abs(logits - ref_logits).max() > 10 * LOGIT_TOLERANCE * np.abs(ref_logits).max()
