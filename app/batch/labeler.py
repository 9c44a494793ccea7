"""One image in, one outcome out: skipped, copied from a duplicate, labelled, or failed.

"Skipped" follows the core's "already done" rule (``app.session.done_rule``): the known
results were filtered by the job's max-tokens limit when the file was read, and the
content key carries the options key, so an answer made with other options never counts.

The engine is loaded once per labeler (once per process locally, once per Ray actor).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.batch.job import BatchJob
from app.batch.record_keys import content_key, entry_key
from app.batch.results_log import KnownResults
from app.engine.engine import Engine
from app.errors import EngineError, PaliDeskError
from app.file_digest import file_sha256
from app.model_files.model_folder import ModelFolder
from app.progress import CancelFlag
from app.session.result_json import failure_record, result_record
from app.tasks.task_runner import TaskResult, run_task

OutcomeKind = Literal["skipped", "duplicate", "labelled", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one image. ``record`` is set for "labelled" and "failed"."""

    image: str
    kind: OutcomeKind
    content: bytes
    entry: bytes
    record: dict[str, Any] | None = field(default=None, compare=False)


class ImageLabeler:
    """Runs a BatchJob's task on images with one loaded engine."""

    def __init__(self, job: BatchJob) -> None:
        self.job = job
        pair = ModelFolder(job.model.folder).resolve(job.model.quant)
        if pair.pair_id != job.model.pair_id:
            raise EngineError(
                f"The model folder {job.model.folder} on this machine holds another model "
                "than the one the batch started with. Every worker must see the same "
                "folder (a shared path, see docs/scaling.md)."
            )
        if job.mask_decoder is not None and not os.path.isfile(job.mask_decoder):
            raise EngineError(
                f"The mask decoder {job.mask_decoder} is not on this machine. Every worker "
                "must see the same path (a shared folder, see docs/scaling.md)."
            )
        self.engine = Engine()
        self.engine.load(pair, job.engine_config())

    def close(self) -> None:
        self.engine.close()

    def label(self, image: str, known: KnownResults,
              cancel: CancelFlag | None = None) -> Outcome:
        """Label ``image`` (an absolute path) unless ``known`` already has its result.

        ``cancel`` stops the generation before its next token; the caller must then drop
        the outcome (its answer is cut short)."""
        digest, problem = _fingerprint(image)
        model = self.job.model
        content = content_key(digest, image, self.job.prompt, model.pair_id, model.quant,
                              self.job.options_key)
        entry = entry_key(content, image)
        if known.has_entry(entry):
            return Outcome(image, "skipped", content, entry)
        if known.has_content(content):
            return Outcome(image, "duplicate", content, entry)
        if problem is not None:
            return Outcome(image, "failed", content, entry, self._error(image, digest, problem))
        try:
            result = self._run(image, cancel)
        except PaliDeskError as exc:  # unreadable image, or the engine refused this one
            return Outcome(image, "failed", content, entry, self._error(image, digest, str(exc)))
        record = result_record(result, image, self.job.model, self.job.options, digest)
        return Outcome(image, "labelled", content, entry, record)

    def _run(self, image: str, cancel: CancelFlag | None = None) -> TaskResult:
        final = None
        decoder = self.job.mask_decoder
        for event in run_task(self.engine, image, self.job.request, self.job.options, cancel,
                              mask_decoder=None if decoder is None else Path(decoder)):
            if isinstance(event, TaskResult):
                final = event
        assert final is not None  # run_task always ends with its TaskResult
        return final

    def _error(self, image: str, digest: str | None, message: str) -> dict[str, Any]:
        return failure_record(image, message, self.job.request.kind.value, self.job.prompt,
                              self.job.model, self.job.options, digest)


def _fingerprint(image: str) -> tuple[str | None, str | None]:
    """(SHA-256 of the file's bytes, None) or (None, why it cannot be read)."""
    name = os.path.basename(image)
    try:
        info = os.stat(image)
    except FileNotFoundError:
        return None, f"{image} does not exist."
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror})."
    if stat.S_ISDIR(info.st_mode):
        return None, f"{image} is a folder, not an image."
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        return None, f"{name} is not a regular file."
    try:
        return file_sha256(image), None
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror})."
