"""What the worker does with a job, on the real engine and a tiny model, without Qt."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.engine.events import GenerationOptions, TokenEvent
from app.model_files.model_folder import ModelFolder
from app.session import JobOutcome, ModelIdentity, Session
from app.session.job import CANCELLED, DONE, FAILED, SKIPPED, JobStarted
from app.session.job_runner import execute_job
from app.session.prefetch import prefetch_order
from app.tasks.prompts import TaskKind, TaskRequest
from conftest import IMAGES

IMAGE = IMAGES / "noise_97x150.png"


@pytest.fixture(scope="module")
def engine(converted):
    engine = Engine()
    engine.load(ModelFolder(converted("pg2-tiny-224")).resolve("F16"))
    yield engine
    engine.unload()


def _job(engine: Engine, skip: bool = False, max_new: int = 12, identity=None):
    session = Session()
    pair = engine.pair
    session.model_loaded(identity or ModelIdentity(pair.pair_id, "tiny", pair.quant))
    return session.make_job(IMAGE, TaskRequest(TaskKind.CAPTION),
                            GenerationOptions(max_new_tokens=max_new), skip_if_done=skip)


def _outcome(events) -> JobOutcome:
    outcomes = [e for e in events if isinstance(e, JobOutcome)]
    assert len(outcomes) == 1
    return outcomes[0]


def test_a_job_runs_streams_and_is_stored_once_with_its_model(engine, result_store):
    job = _job(engine)
    events = list(execute_job(engine, job, result_store))
    assert isinstance(events[0], JobStarted)
    outcome = _outcome(events)
    assert outcome.status == DONE and outcome.record.id is not None
    tokens = [e.token_id for e in events if isinstance(e, TokenEvent)]
    assert tokens == outcome.record.tokens
    (stored,) = result_store.history.recent()
    assert stored.pair_id == engine.pair.pair_id and stored.model == "tiny"


def test_a_second_job_with_skip_reuses_the_stored_result_without_running(engine, result_store):
    first = _outcome(execute_job(engine, _job(engine), result_store))
    events = list(execute_job(engine, _job(engine, skip=True), result_store))
    assert not any(isinstance(e, JobStarted | TokenEvent) for e in events)
    outcome = _outcome(events)
    assert outcome.status == SKIPPED and outcome.record.id == first.record.id
    # A higher limit than the stored run was cut at is not "the same" result.
    if first.record.stop_reason == "max_tokens":
        again = _outcome(execute_job(engine, _job(engine, skip=True, max_new=20), result_store))
        assert again.status == DONE


def test_a_job_cancelled_before_it_starts_never_runs(engine, result_store):
    job = _job(engine)
    job.cancel.cancel()  # Esc while it waited behind a load or another job
    events = list(execute_job(engine, job, result_store))
    assert events == [JobOutcome(job.job_id, CANCELLED)]
    assert not result_store.history.recent()


def test_a_job_for_another_model_fails_instead_of_being_misattributed(engine, result_store):
    job = _job(engine, identity=ModelIdentity("other-pair", "other", "Q8_0"))
    outcome = _outcome(execute_job(engine, job, result_store))
    assert outcome.status == FAILED and "model changed" in outcome.message
    assert not result_store.history.recent()


def test_an_unreadable_image_fails_with_a_reason(engine, result_store, tmp_path):
    job = _job(engine)
    missing = tmp_path / "gone.png"
    import dataclasses

    outcome = _outcome(execute_job(engine, dataclasses.replace(job, image=missing), result_store))
    assert outcome.status == FAILED and "gone.png" in outcome.message


def test_prefetch_order_is_the_selection_then_the_next_queued_images():
    paths = [Path(f"/i/{n}.png") for n in range(6)]
    assert prefetch_order(paths, paths[2], ahead=3) == [paths[2], paths[3], paths[4], paths[5]]
    assert prefetch_order(paths, paths[5], ahead=2) == [paths[5], paths[0], paths[1]]
    assert prefetch_order(paths, None, ahead=2) == [paths[0], paths[1]]
