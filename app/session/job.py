"""A job: what the user asked for when they pressed Run, frozen at that moment."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.events import GenerationOptions
from app.history.history_record import HistoryRecord
from app.progress import CancelFlag
from app.session.identity import ModelIdentity
from app.tasks.prompts import TaskRequest, build_prompt

# How a job ended.
DONE, CANCELLED, FAILED, SKIPPED = "done", "cancelled", "failed", "skipped"


@dataclass(frozen=True)
class Job:
    """One task on one image with one model; edits to the task panel after Run do not
    reach it. ``cancel`` is its own flag, so a cancel sent before it starts is kept."""

    job_id: int
    image: Path
    request: TaskRequest
    options: GenerationOptions
    model: ModelIdentity
    queue_key: str = ""  # the window's queue item this job runs for
    image_sha256: str = ""  # known digest of the image's bytes ("" = work it out)
    skip_if_done: bool = False  # "Run all": reuse a stored result instead of running
    mask_decoder: Path | None = None  # segment: big_vision's vae-oid.npz, if installed
    cancel: CancelFlag = field(default_factory=CancelFlag, compare=False, repr=False)

    @property
    def prompt(self) -> str:
        return build_prompt(self.request)


# Ids of jobs made outside the window's Session (which numbers its own): the server's.
_free_ids = itertools.count(1_000_000)


def new_job(image: Path | str, request: TaskRequest, options: GenerationOptions,
            model: ModelIdentity, *, skip_if_done: bool = True, image_sha256: str = "",
            mask_decoder: Path | None = None) -> Job:
    """A job for a face without a ``Session`` (the server): a fresh id, and by default
    the stored result is reused when one answers it exactly (``done_rule``)."""
    return Job(next(_free_ids), Path(image), request, options, model,
               image_sha256=image_sha256, skip_if_done=skip_if_done,
               mask_decoder=mask_decoder)


@dataclass(frozen=True)
class JobStarted:
    """The job really runs (it was neither cancelled while waiting nor skipped)."""

    job_id: int


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: ``status`` is done, cancelled, failed or skipped.

    ``record`` is the stored result (done, skipped, and cancelled once tokens came),
    ``message`` the reason for the user when it failed.
    """

    job_id: int
    status: str
    record: HistoryRecord | None = None
    message: str = ""
