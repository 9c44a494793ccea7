"""How a job's end shows in the queue row: a status and a short note."""

from __future__ import annotations

from app.session.job import CANCELLED, DONE, FAILED, SKIPPED


def queue_status(outcome: str, has_finished_result: bool, message: str = "") -> tuple[str, str]:
    """(status, note) for a job that ended as ``outcome``.

    A cancelled re-run of an image that already has a finished result leaves it done:
    the finished answer is still there (and listed first), only the re-run was stopped.
    """
    if outcome == DONE:
        return "done", ""
    if outcome == SKIPPED:
        return "done", "stored result"
    if outcome == CANCELLED:
        return ("done", "re-run cancelled") if has_finished_result else ("ready", "cancelled")
    if outcome == FAILED:
        return "failed", message
    raise ValueError(f"unknown job outcome {outcome!r}")
