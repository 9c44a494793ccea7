"""The Run-all state machine and the session's decisions, without Qt or a model."""

from __future__ import annotations

from pathlib import Path

from app.engine.events import GenerationOptions
from app.session import Batch, JobOutcome, JobState, ModelIdentity, Session
from app.session.batch import BatchState
from app.session.job import CANCELLED, DONE, FAILED, SKIPPED
from app.tasks.prompts import TaskKind, TaskRequest

OLD = ModelIdentity("pair-a", "paligemma2-3b-mix-224", "Q4_K_M")
NEW = ModelIdentity("pair-b", "paligemma2-3b-mix-448", "Q8_0")
DETECT = TaskRequest(TaskKind.DETECT, classes=("cat",))


def _session_with_jobs(n: int) -> tuple[Session, list]:
    session = Session()
    session.model_loaded(OLD)
    jobs = [session.make_job(Path(f"/img/{i}.png"), DETECT, GenerationOptions(),
                             f"image-{i}", skip_if_done=True) for i in range(n)]
    return session, jobs


def _end(session: Session, status: str):
    return session.job_ended(JobOutcome(session.running.job_id, status))


def test_jobs_run_one_at_a_time_in_order_and_the_batch_finishes():
    session, jobs = _session_with_jobs(3)
    first = session.run_all(jobs)
    assert first is jobs[0] and session.busy
    second = _end(session, DONE)
    assert second is jobs[1]
    third = _end(session, SKIPPED)
    assert third is jobs[2]
    assert _end(session, FAILED) is None
    batch = session.batch
    assert batch.state is BatchState.FINISHED and not session.busy
    assert [batch.states[j.job_id] for j in jobs] == [JobState.DONE, JobState.SKIPPED,
                                                       JobState.FAILED]
    assert batch.summary().startswith("Run all finished: 3 of 3 · 1 already done · 1 failed")


def test_cancel_marks_every_unfinished_job_and_says_cancelled_not_failed():
    session, jobs = _session_with_jobs(5)
    session.run_all(jobs)
    _end(session, DONE)
    _end(session, DONE)  # job 3 runs now
    session.cancel()
    assert all(job.cancel.cancelled for job in jobs[2:])
    assert not any(job.cancel.cancelled for job in jobs[:2])
    assert _end(session, CANCELLED) is None  # nothing more is sent
    text = session.batch.summary()
    # Cancelled is not counted as failed, and no ETA is left over once it stopped.
    assert text == "Run all cancelled: 3 of 5 · 1 cancelled · 2 not run"
    assert not session.busy


def test_a_cancel_sent_before_a_job_starts_is_kept_by_that_job():
    session, jobs = _session_with_jobs(2)
    session.run_all(jobs)
    session.cancel()
    # Job 2 never reached the worker: its own flag says so when it would start.
    assert jobs[1].cancel.cancelled


def test_a_model_load_pauses_the_batch_and_the_rest_runs_on_the_new_model():
    session, jobs = _session_with_jobs(3)
    session.run_all(jobs)
    session.loading_started()
    assert session.batch.state is BatchState.PAUSED
    assert _end(session, DONE) is None  # the running job ended on the old model; wait
    assert "paused" in session.batch.summary()
    nxt = session.model_loaded(NEW)
    assert nxt is not None and nxt.job_id == jobs[1].job_id
    assert nxt.model == NEW  # attributed to the model it will really run on
    assert session.batch.jobs[0].model == OLD


def test_a_failed_load_stops_the_batch_in_one_defined_state():
    session, jobs = _session_with_jobs(4)
    session.run_all(jobs)
    session.loading_started()
    session.model_failed("Q2_K is not in this model folder.")
    assert session.model is None and not session.loading
    assert _end(session, DONE) is None
    batch = session.batch
    assert batch.state is BatchState.STOPPED
    assert batch.count(JobState.PENDING) == 3  # not failed: they can run later
    assert batch.summary() == ("Run all stopped: 1 of 4 · 3 not run — the model could not "
                               "be loaded: Q2_K is not in this model folder.")
    assert session.blocker(True, True).startswith("Load a model first")


def test_the_eta_comes_from_measured_runs_and_disappears_when_the_batch_ends():
    batch = Batch([])
    assert batch.eta_seconds() is None
    session, jobs = _session_with_jobs(3)
    session.run_all(jobs)
    _end(session, DONE)
    assert session.batch.eta_seconds() is not None
    _end(session, DONE)
    _end(session, DONE)
    assert session.batch.eta_seconds() is None and "left" not in session.batch.summary()


def test_jobs_are_snapshots_and_stale_outcomes_are_ignored():
    session, jobs = _session_with_jobs(2)
    session.run_all(jobs)
    assert session.job_ended(JobOutcome(999, DONE)) is None  # not the running job
    assert session.running is jobs[0]
    assert jobs[0].prompt == "detect cat"
    assert session.run_one(jobs[1]) is None  # busy: refused


def test_run_is_blocked_with_a_reason():
    session = Session()
    assert session.blocker(True, True).startswith("Load a model first")
    session.loading_started()
    assert session.blocker(True, True) == "The model is loading."
    session.model_loaded(OLD)
    assert session.blocker(False, True) == "Add an image first."
    assert session.blocker(True, False) == "Complete the task's fields first."
    assert session.blocker(True, True) == ""
