"""The batch on this machine: one engine, images one after the other.

Ctrl+C (the ``cancel`` flag, set by the command's signal handler) stops the generation
before its next token; the image in progress is not written, every finished one is, so
``--resume`` continues from there.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.batch.job import BatchJob
from app.batch.labeler import ImageLabeler
from app.batch.progress_bar import BatchProgress
from app.batch.results_log import ResultsLog
from app.batch.settle import settle
from app.batch.summary import BatchSummary
from app.progress import CancelFlag


def run_local(job: BatchJob, images: Iterable[str], log: ResultsLog, summary: BatchSummary,
              progress: BatchProgress, cancel: CancelFlag | None = None) -> None:
    """Label ``images`` in order, appending to ``log``; the live log answers "done?".

    Raises Cancelled once ``cancel`` is set, without writing the image in progress."""
    cancel = cancel or CancelFlag()
    labeler = ImageLabeler(job)
    try:
        for image in images:
            cancel.check(_STOPPED)
            outcome = labeler.label(image, log, cancel)
            cancel.check(_STOPPED)  # its answer was cut short: not a result
            settle(outcome, log, summary, progress)
    finally:
        labeler.close()


_STOPPED = "The batch (finished images are kept; add --resume to continue)"
