"""The life of a result, from the press of Run to the export: Qt-free.

- ``Job``: an immutable snapshot of what the user asked for (image, task, options, model).
- ``Batch``: the state machine of a "Run all" pass.
- ``ResultStore``: the history database as the one home of every result.
- ``execute_job``: what the engine's thread does with one job (skip, run, store).

The window only shows what these decide; the CLI and the tests use them directly.
"""

from app.session.batch import Batch, JobState
from app.session.identity import ModelIdentity, options_key
from app.session.job import Job, JobOutcome
from app.session.result_store import ResultStore
from app.session.session import Session

__all__ = ["Batch", "Job", "JobOutcome", "JobState", "ModelIdentity", "ResultStore",
           "Session", "options_key"]
