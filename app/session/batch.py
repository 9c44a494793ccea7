"""The state machine of a "Run all" pass: which job runs next, what each ended as, and
what the status line says. Plain Python so every transition has a unit test.

Jobs: pending -> running -> done / cancelled / failed / skipped.
The batch: running; paused while a model loads (then resumed with the new model, or
stopped with the reason); cancelled by the user; finished when no job is pending.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import Enum

from app.progress import format_duration
from app.session.identity import ModelIdentity
from app.session.job import CANCELLED, DONE, FAILED, SKIPPED, Job


class JobState(Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = DONE
    CANCELLED = CANCELLED
    FAILED = FAILED
    SKIPPED = SKIPPED


class BatchState(Enum):
    RUNNING = "running"
    PAUSED = "paused"  # waiting for a model load
    FINISHED = "finished"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # ended by a failure outside the jobs (a model that did not load)


@dataclass
class Batch:
    """A pass over ``jobs`` in order, one at a time."""

    jobs: list[Job]
    states: dict[int, JobState] = field(init=False)
    state: BatchState = field(init=False, default=BatchState.RUNNING)
    reason: str = field(init=False, default="")  # why it paused or stopped, for the user
    durations: list[float] = field(init=False, default_factory=list)
    _started_at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.states = {job.job_id: JobState.PENDING for job in self.jobs}

    # --- transitions ------------------------------------------------------------------

    def next_job(self) -> Job | None:
        """The job to send now, or None (paused, ended, or one already running).

        Finishes the batch when nothing is pending and nothing runs."""
        if self.state is not BatchState.RUNNING or self.running_job() is not None:
            return None
        for job in self.jobs:
            if self.states[job.job_id] is JobState.PENDING:
                self.states[job.job_id] = JobState.RUNNING
                self._started_at = time.monotonic()
                return job
        self.state = BatchState.FINISHED
        return None

    def job_ended(self, job_id: int, status: str) -> None:
        """Record how a job ended (``status``: done, cancelled, failed or skipped)."""
        if self.states.get(job_id) is not JobState.RUNNING:
            return  # not ours, or already ended
        self.states[job_id] = JobState(status)
        if self._started_at is not None and status in (DONE, FAILED):
            self.durations.append(time.monotonic() - self._started_at)
        self._started_at = None

    def pause(self, reason: str) -> None:
        """Hold the pending jobs (a model is loading); the running one finishes."""
        if self.state is BatchState.RUNNING:
            self.state, self.reason = BatchState.PAUSED, reason

    def resume(self, model: ModelIdentity) -> None:
        """Go on with ``model``: pending jobs run on it and are attributed to it."""
        if self.state is not BatchState.PAUSED:
            return
        self.jobs = [
            dataclasses.replace(job, model=model)
            if self.states[job.job_id] is JobState.PENDING else job
            for job in self.jobs
        ]
        self.state, self.reason = BatchState.RUNNING, ""

    def stop(self, reason: str) -> None:
        """End the batch because of ``reason``; pending jobs stay pending (not failed)."""
        if self.active:
            self.state, self.reason = BatchState.STOPPED, reason

    def cancel(self) -> list[Job]:
        """The user's cancel: set every unfinished job's flag; returns them."""
        if self.active:
            self.state = BatchState.CANCELLED
        unfinished = [job for job in self.jobs
                      if self.states[job.job_id] in (JobState.PENDING, JobState.RUNNING)]
        for job in unfinished:
            job.cancel.cancel()
        return unfinished

    # --- what it says -----------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.state in (BatchState.RUNNING, BatchState.PAUSED)

    @property
    def total(self) -> int:
        return len(self.jobs)

    def running_job(self) -> Job | None:
        return next((job for job in self.jobs
                     if self.states[job.job_id] is JobState.RUNNING), None)

    def count(self, state: JobState) -> int:
        return sum(1 for s in self.states.values() if s is state)

    @property
    def ended(self) -> int:
        """Jobs that are over, whatever their end."""
        return sum(1 for s in self.states.values()
                   if s not in (JobState.PENDING, JobState.RUNNING))

    def eta_seconds(self) -> float | None:
        """Time left from the mean of the runs so far; None before the first or when the
        batch is not going on."""
        if not self.durations or not self.active:
            return None
        left = self.count(JobState.PENDING) + (1 if self.running_job() else 0)
        return left * sum(self.durations) / len(self.durations)

    def summary(self) -> str:
        """The status line, e.g. "Run all: 3 of 10 · 1 already done · about 12 s left"."""
        heads = {
            BatchState.RUNNING: "Run all",
            BatchState.PAUSED: "Run all paused",
            BatchState.FINISHED: "Run all finished",
            BatchState.CANCELLED: "Run all cancelled",
            BatchState.STOPPED: "Run all stopped",
        }
        parts = [f"{self.ended} of {self.total}"]
        for state, words in ((JobState.SKIPPED, "already done"), (JobState.FAILED, "failed"),
                             (JobState.CANCELLED, "cancelled")):
            if n := self.count(state):
                parts.append(f"{n} {words}")
        left = self.count(JobState.PENDING)
        if self.state in (BatchState.CANCELLED, BatchState.STOPPED) and left:
            parts.append(f"{left} not run")
        eta = self.eta_seconds()
        if eta is not None:
            parts.append(f"about {format_duration(eta)} left")
        text = f"{heads[self.state]}: " + " · ".join(parts)
        return f"{text} — {self.reason}" if self.reason else text

