"""What counts as "already done", and which results an image shows and exports."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app.engine.events import GenerationOptions
from app.history import HistoryRecord
from app.session import ModelIdentity, Session, options_key
from app.session.result_store import latest_results, reusable
from app.tasks.prompts import TaskKind, TaskRequest

MODEL = ModelIdentity("pair-a", "paligemma2-3b-mix-224", "Q4_K_M")


def _record(**changes) -> HistoryRecord:
    base = HistoryRecord(image_path="/img/a.png", image_sha256="ab" * 32, image_width=10,
                         image_height=10, task="caption", prompt="caption en",
                         model=MODEL.name, quantization=MODEL.quant, text="a cat<eos>",
                         stop_reason="eos", tokens=[5, 6, 1], pair_id=MODEL.pair_id,
                         max_new_tokens=128, created="2026-11-30T10:00:00+00:00")
    return dataclasses.replace(base, **changes)


def _job(max_new: int = 128, temperature: float = 0.0, model: ModelIdentity = MODEL):
    session = Session()
    session.model_loaded(model)
    return session.make_job(Path("/img/a.png"), TaskRequest(TaskKind.CAPTION),
                            GenerationOptions(max_new_tokens=max_new, temperature=temperature))


def test_a_stored_result_is_found_by_digest_prompt_pair_quant_and_options(result_store):
    result_store.history.add(_record())
    assert result_store.find_done(_job(), "ab" * 32) is not None
    assert result_store.find_done(_job(), "cd" * 32) is None  # other bytes
    assert result_store.find_done(_job(temperature=0.7), "ab" * 32) is None  # sampled
    other = ModelIdentity("pair-b", MODEL.name, MODEL.quant)  # same name, other download
    assert result_store.find_done(_job(model=other), "ab" * 32) is None
    assert result_store.find_done(_job(model=dataclasses.replace(MODEL, quant="F16")),
                           "ab" * 32) is None


def test_cancelled_results_never_count_as_done(result_store):
    result_store.history.add(_record(stop_reason="cancelled"))
    assert result_store.find_done(_job(), "ab" * 32) is None


def test_a_result_cut_at_the_limit_is_reused_only_with_the_same_limit():
    cut = _record(stop_reason="max_tokens", tokens=[5] * 512, max_new_tokens=512)
    assert reusable(cut, 512)
    assert not reusable(cut, 1500)  # a higher limit would let it go on
    ended = _record(tokens=[5] * 40 + [1])
    assert reusable(ended, 1500) and reusable(ended, 41) and not reusable(ended, 20)


def test_options_key_ignores_sampling_settings_when_greedy():
    assert options_key(GenerationOptions(seed=3, top_k=5)) == "greedy"
    assert options_key(GenerationOptions(temperature=0.5, seed=3)) != options_key(
        GenerationOptions(temperature=0.5, seed=4))


def test_an_image_lists_every_result_and_a_cancelled_rerun_never_hides_a_finished_one():
    finished = _record(id=1, created="2026-11-30T10:00:00+00:00")
    detect = _record(id=2, task="detect", prompt="detect cat",
                     created="2026-11-30T10:01:00+00:00")
    rerun = _record(id=3, stop_reason="cancelled", tokens=[5],
                    created="2026-11-30T10:02:00+00:00")
    older_same = _record(id=0, created="2026-11-30T09:00:00+00:00")
    shown = latest_results([finished, detect, rerun, older_same])
    assert [r.id for r in shown] == [3, 2, 1]  # newest first; the duplicate collapses


def test_session_export_reads_the_store_by_digest_with_filters(result_store):
    result_store.history.add(_record())
    result_store.history.add(_record(task="detect", prompt="detect cat"))
    result_store.history.add(_record(image_path="/elsewhere/copy.png", task="ocr", prompt="ocr",
                              stop_reason="cancelled"))
    images = [("ab" * 32, Path("/img/a.png"))]
    assert {r.task for r in result_store.for_images(images)} == {"caption", "detect"}
    assert {r.task for r in result_store.for_images(images, task="detect")} == {"detect"}
    assert {r.task for r in result_store.for_images(images, include_cancelled=True)} == {
        "caption", "detect", "ocr"}
    # Without a digest (not hashed yet) the path still finds the image's results.
    assert len(result_store.for_images([("", Path("/img/a.png"))])) == 2
