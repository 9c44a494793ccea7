"""The window's session in plain Python: which model is loaded (or loading), the job
that runs, the "Run all" batch, and what to send to the engine next.

The window calls these methods for what the user does and what the worker answers, and
sends the jobs they return; it decides nothing itself.
"""

from __future__ import annotations

from pathlib import Path

from app.engine.events import GenerationOptions
from app.session.batch import Batch, BatchState
from app.session.identity import ModelIdentity
from app.session.job import Job, JobOutcome
from app.settings import Settings
from app.tasks.prompts import TaskRequest


class Session:
    def __init__(self) -> None:
        self.model: ModelIdentity | None = None
        self.loading = False
        self.batch: Batch | None = None
        self.running: Job | None = None  # sent to the worker and not ended yet
        self._last_id = 0

    # --- making jobs --------------------------------------------------------------------

    def make_job(self, image: Path, request: TaskRequest, options: GenerationOptions,
                 queue_key: str = "", image_sha256: str = "",
                 skip_if_done: bool = False, mask_decoder: Path | None = None) -> Job:
        """Snapshot a job for the loaded model (raises RuntimeError without one)."""
        if self.model is None:
            raise RuntimeError("no model is loaded")
        self._last_id += 1
        return Job(self._last_id, Path(image), request, options, self.model, queue_key,
                   image_sha256, skip_if_done, mask_decoder)

    @property
    def busy(self) -> bool:
        return self.running is not None or (self.batch is not None and self.batch.active)

    def can_run(self) -> bool:
        return self.model is not None and not self.loading and not self.busy

    def blocker(self, has_images: bool, task_complete: bool) -> str:
        """Why Run cannot start now, in words for its tooltip; "" when it can."""
        if self.loading:
            return "The model is loading."
        if self.model is None:
            return "Load a model first (Settings or File › Choose Model Folder)."
        if not has_images:
            return "Add an image first."
        if not task_complete:
            return "Complete the task's fields first."
        if self.busy:
            return "A task is running; cancel it or wait for it to finish."
        return ""

    # --- what the user does -------------------------------------------------------------

    def run_one(self, job: Job) -> Job | None:
        """Run a single job; returns it to send, or None when something else runs."""
        if self.busy:
            return None
        self.batch = None
        self.running = job
        return job

    def run_all(self, jobs: list[Job]) -> Job | None:
        """Start a batch over ``jobs``; returns the first job to send."""
        if self.busy:
            return None
        self.batch = Batch(jobs)
        return self._advance()

    def cancel(self) -> None:
        """Stop the running job within a token and every job of the batch not run yet."""
        if self.running is not None:
            self.running.cancel.cancel()
        if self.batch is not None:
            self.batch.cancel()

    # --- what the worker answers ----------------------------------------------------------

    def job_ended(self, outcome: JobOutcome) -> Job | None:
        """Record how the running job ended; returns the next job to send, if any."""
        if self.running is None or outcome.job_id != self.running.job_id:
            return None
        self.running = None
        if self.batch is None:
            return None
        self.batch.job_ended(outcome.job_id, outcome.status)
        return self._advance()

    def loading_started(self) -> None:
        self.loading = True
        if self.batch is not None:
            self.batch.pause("waiting for the model to load")

    def model_loaded(self, model: ModelIdentity) -> Job | None:
        """The worker loaded ``model``: a paused batch goes on with it."""
        self.loading, self.model = False, model
        if self.batch is not None and self.batch.state is BatchState.STOPPED:
            # Stopped by a load that failed: the reason no longer holds once one loads.
            self.batch.reason = "a model is loaded now; Run All runs the images left"
            return None
        if self.batch is not None:
            self.batch.resume(model)
            return self._advance()
        return None

    def model_failed(self, reason: str) -> None:
        """The load failed: no model is loaded any more; a batch stops with the reason."""
        self.loading, self.model = False, None
        if self.batch is not None:
            self.batch.stop(f"the model could not be loaded: {reason}")

    def _advance(self) -> Job | None:
        assert self.batch is not None
        if self.running is not None:
            return None
        job = self.batch.next_job()
        self.running = job
        return job


def options_from_settings(settings: Settings) -> GenerationOptions:
    """The generation options a job snapshots from the settings."""
    return GenerationOptions(max_new_tokens=settings.max_new_tokens,
                             temperature=settings.temperature, top_k=settings.top_k,
                             top_p=settings.top_p, seed=settings.seed)


def needs_reload(old: Settings, new: Settings) -> bool:
    """Whether new settings change what is loaded (max new tokens and sampling do not:
    the context is sized for the largest limit)."""
    keys = ("model_folder", "quantization", "gpu_layers", "threads")
    return any(getattr(old, key) != getattr(new, key) for key in keys)
