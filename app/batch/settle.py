"""Turning each image's outcome into (at most) one line of the results file.

The same rules for the local loop and for results coming back from Ray workers, which
decide from a snapshot taken at the start and may race on duplicates: here, against
the live file, a path is written once and identical bytes are copied, never re-run
results written twice.
"""

from __future__ import annotations

import time

from app.batch.labeler import Outcome
from app.batch.progress_bar import BatchProgress
from app.batch.results_log import ResultsLog
from app.batch.summary import BatchSummary


def settle(outcome: Outcome, log: ResultsLog, summary: BatchSummary,
           progress: BatchProgress) -> None:
    if outcome.kind == "skipped" or log.has_entry(outcome.entry):
        summary.skipped += 1
        progress.skip()
        return
    if outcome.kind == "duplicate" or log.has_content(outcome.content):
        first = log.first_record(outcome.content)
        log.append({**first, "image": outcome.image,
                    "duplicate_of": first.get("duplicate_of", first["image"])})
        summary.duplicates += 1
        progress.skip()
        return
    assert outcome.record is not None
    log.append(outcome.record)
    summary.ran(time.monotonic())
    if outcome.kind == "failed":
        summary.failures.append((outcome.image, str(outcome.record["error"])))
    else:
        summary.labelled += 1
    progress.advance()
