"""The history database as the one home of every result: what is stored for a job, what
counts as "already done", and which results an image or a session has.

Views and exports read records from here. The one result shown without being here is one
the store failed to save (a history error): the window still shows it, so the answer is
not lost from view (app/ui/job_display.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.history.history_record import HistoryRecord
from app.history.history_store import HistoryStore
from app.session.done_rule import ended_within
from app.session.identity import options_key

if TYPE_CHECKING:  # task_runner loads llama.cpp
    from app.session.job import Job
    from app.tasks.task_runner import TaskResult


def reusable(record: HistoryRecord, max_new_tokens: int) -> bool:
    """Whether a stored finished result is what a run with ``max_new_tokens`` would give
    (the rule of ``app.session.done_rule``, which ``palidesk batch --resume`` uses too)."""
    return ended_within(record.stop_reason, len(record.tokens), record.max_new_tokens,
                        max_new_tokens)


def result_group(record: HistoryRecord) -> tuple[str, str, str, str, str]:
    """Results in one group answer the same question with the same model."""
    return (record.image_sha256 or record.image_path, record.prompt,
            record.pair_id or record.model, record.quantization, record.options_key)


def latest_results(records: Iterable[HistoryRecord]) -> list[HistoryRecord]:
    """What a user wants to see of an image's results, newest first: the newest finished
    result of each group, and a cancelled one only when it is newer than every finished
    result of its group (a cancelled re-run never hides the finished run before it)."""
    ordered = sorted(records, key=lambda r: (r.created, r.id or 0), reverse=True)
    finished_groups: set[tuple[str, str, str, str, str]] = set()
    cancelled_groups: set[tuple[str, str, str, str, str]] = set()
    shown: list[HistoryRecord] = []
    for record in ordered:
        group = result_group(record)
        if record.cancelled:
            if group not in finished_groups and group not in cancelled_groups:
                cancelled_groups.add(group)
                shown.append(record)
        elif group not in finished_groups:
            finished_groups.add(group)
            shown.append(record)
    return shown


def listed_results(records: Iterable[HistoryRecord], show_older: bool = False,
                   keep_id: int | None = None) -> ResultListing:
    """The results list of one image: ``latest_results``, or every result with
    ``show_older``; ``keep_id`` (a result reopened from History) is listed in any case,
    so reopening an older result shows exactly that one."""
    every = sorted(records, key=lambda r: (r.created, r.id or 0), reverse=True)
    latest = latest_results(every)
    if show_older:
        return ResultListing(every, 0)
    listed = {r.id for r in latest}
    shown = [r for r in every if r.id in listed or (keep_id is not None and r.id == keep_id)]
    return ResultListing(shown, len(every) - len(shown))


@dataclass(frozen=True)
class ResultListing:
    """What the results list shows, and how many older results it leaves out."""

    records: list[HistoryRecord]
    older: int  # older results left out of the list (shown on request)


class ResultStore:
    """Writes each finished job once and answers what the session needs to know."""

    def __init__(self, history: HistoryStore) -> None:
        self.history = history

    def save(self, job: Job, result: TaskResult, image_sha256: str) -> HistoryRecord:
        """Store ``result`` of ``job`` with the job's model identity; returns it with its id."""
        record = HistoryRecord.from_task_result(
            result, job.image, job.model.name, job.model.quant,
            image_sha256=image_sha256, pair_id=job.model.pair_id,
            options_key=_key(job), max_new_tokens=job.options.max_new_tokens,
        )
        record_id = self.history.add(record)
        return HistoryRecord(**{**record.__dict__, "id": record_id})

    def find_done(self, job: Job, image_sha256: str) -> HistoryRecord | None:
        """The newest stored result that answers ``job`` exactly, if any."""
        found = self.history.find(image_sha256, job.prompt, job.model.pair_id,
                                  job.model.quant, _key(job))
        return next((r for r in found if reusable(r, job.options.max_new_tokens)), None)

    def for_image(self, image_sha256: str, image_path: Path | str) -> list[HistoryRecord]:
        """The results of one image, as the results list shows them (``latest_results``)."""
        return latest_results(self.history.for_image(image_sha256, str(image_path)))

    def listing(self, image_sha256: str, image_path: Path | str, show_older: bool = False,
                keep_id: int | None = None) -> ResultListing:
        """The results list of one image (see ``listed_results``)."""
        return listed_results(self.history.for_image(image_sha256, str(image_path)),
                              show_older, keep_id)

    def for_images(
        self, images: Iterable[tuple[str, Path | str]], task: str | None = None,
        include_cancelled: bool = False,
    ) -> list[HistoryRecord]:
        """Results of several images (digest, path) — what "export this session" writes —
        optionally of one task only; cancelled partial results only when asked.

        Each image gets its own records, named by its own path: a file whose bytes equal
        another's shares that file's answers (they were not run twice) but is exported
        under its name like any other image."""
        records: list[HistoryRecord] = []
        seen: set[tuple[str, int]] = set()
        for digest, path in images:
            for record in self.for_image(digest, path):
                key = (str(path), record.id or -1)
                if key in seen or (task is not None and record.task != task):
                    continue
                if record.cancelled and not include_cancelled:
                    continue
                seen.add(key)
                records.append(dataclasses.replace(record, image_path=str(path)))
        return records


def _key(job: Job) -> str:
    return options_key(job.options)
