"""What the engine's thread does with one job: skip it when its result is stored, run it
otherwise, and store what came out — once, attributed to the job's model.

Qt-free: the window's worker forwards these events as signals; tests drive it directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from app.engine.engine import Engine
from app.engine.events import TokenEvent
from app.errors import HistoryError, PaliDeskError
from app.file_digest import file_sha256
from app.history.history_record import HistoryRecord
from app.session.job import CANCELLED, DONE, FAILED, SKIPPED, Job, JobOutcome, JobStarted
from app.session.result_store import ResultStore
from app.tasks.task_runner import ObjectEvent, TaskResult, run_task

log = logging.getLogger("palidesk.session")

JobEvent = JobStarted | TokenEvent | ObjectEvent | JobOutcome


def execute_job(engine: Engine, job: Job, store: ResultStore) -> Iterator[JobEvent]:
    """Stream ``JobStarted`` when it really runs, its tokens and objects, then exactly
    one ``JobOutcome``."""
    if job.cancel.cancelled:  # cancelled while it waited (behind a load or another job)
        yield JobOutcome(job.job_id, CANCELLED)
        return
    problem = _model_mismatch(engine, job)
    if problem:
        yield JobOutcome(job.job_id, FAILED, message=problem)
        return
    try:
        digest = job.image_sha256 or file_sha256(job.image)
    except OSError as exc:
        yield JobOutcome(job.job_id, FAILED, message=(
            f"{job.image.name} cannot be read any more ({exc.strerror or exc})."))
        return
    if job.skip_if_done:
        try:
            found = store.find_done(job, digest)
        except HistoryError as exc:  # cannot tell: run it rather than skip it
            log.warning("skip lookup failed: %s", exc)
            found = None
        if found is not None:
            yield JobOutcome(job.job_id, SKIPPED, record=found)
            return
    yield JobStarted(job.job_id)
    result: TaskResult | None = None
    try:
        for event in run_task(engine, job.image, job.request, job.options, job.cancel,
                              mask_decoder=job.mask_decoder):
            if isinstance(event, TaskResult):
                result = event
            else:
                yield event
    except PaliDeskError as exc:
        yield JobOutcome(job.job_id, FAILED, message=str(exc))
        return
    except Exception as exc:  # an unexpected failure must not take the worker down
        log.exception("task failed")
        yield JobOutcome(job.job_id, FAILED, message=f"The task failed unexpectedly: {exc}")
        return
    assert result is not None
    status = CANCELLED if result.result.stop_reason == "cancelled" else DONE
    if status == CANCELLED and not result.result.tokens:
        yield JobOutcome(job.job_id, CANCELLED)
        return
    yield _stored(store, job, result, digest, status)


def _stored(store: ResultStore, job: Job, result: TaskResult, digest: str,
            status: str) -> JobOutcome:
    try:
        return JobOutcome(job.job_id, status, record=store.save(job, result, digest))
    except HistoryError as exc:
        # The result is still shown (and can be copied); the user learns it is not kept.
        record = HistoryRecord.from_task_result(
            result, job.image, job.model.name, job.model.quant, image_sha256=digest,
            pair_id=job.model.pair_id)
        return JobOutcome(job.job_id, status, record=record, message=str(exc))


def _model_mismatch(engine: Engine, job: Job) -> str:
    pair = engine.pair
    if pair is None:
        return "No model is loaded."
    if pair.pair_id != job.model.pair_id or pair.quant != job.model.quant:
        return (f"The model changed before this image ran ({job.model.describe()} was "
                "asked for). Run it again.")
    return ""
