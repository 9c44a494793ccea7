"""The batch on this machine: one engine, images one after the other."""

from __future__ import annotations

from collections.abc import Iterable

from app.batch.job import BatchJob
from app.batch.labeler import ImageLabeler
from app.batch.progress_bar import BatchProgress
from app.batch.results_log import ResultsLog
from app.batch.settle import settle
from app.batch.summary import BatchSummary


def run_local(job: BatchJob, images: Iterable[str], log: ResultsLog, summary: BatchSummary,
              progress: BatchProgress) -> None:
    """Label ``images`` in order, appending to ``log``; the live log answers "done?"."""
    labeler = ImageLabeler(job)
    try:
        for image in images:
            settle(labeler.label(image, log), log, summary, progress)
    finally:
        labeler.close()
