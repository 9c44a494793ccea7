"""What the running server knows: the engine host, the queue in front of it, where
request images go, and whether the model has loaded. No web stack here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.events import GenerationOptions
from app.server.engine_host import EngineHost, LoadedModel, LoadFinished, LoadModel, ModelPlan
from app.server.job_queue import JobQueue
from app.server.request_errors import RequestRefused
from app.server.served_images import ServedImages
from app.session.job import Job
from app.tasks import TaskRequest


@dataclass
class ServeState:
    host: EngineHost
    queue: JobQueue[Job | LoadModel]
    images: ServedImages
    mask_decoder: Path | None = None
    load_error: str = ""
    loaded: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, host: EngineHost, capacity: int, images: ServedImages,
              mask_decoder: Path | None = None) -> ServeState:
        return cls(host, JobQueue(host.run, capacity), images, mask_decoder)

    def load(self, plan: ModelPlan,
             on_loaded: Callable[[LoadFinished], None] | None = None) -> None:
        """Queue the model load as the worker's first job (the worker owns llama.cpp)."""

        def finished(event: object) -> None:
            if isinstance(event, LoadFinished):
                self.load_error = event.error
                self.loaded.set()
                if on_loaded is not None:
                    on_loaded(event)

        self.queue.submit(LoadModel(plan), finished, lambda: None)

    @property
    def model(self) -> LoadedModel | None:
        return self.host.model if self.loaded.is_set() else None

    def require_model(self, asked: str | None) -> LoadedModel:
        """The served model; refuses while loading, and a ``model`` that names another
        (a request never makes the server load anything, least of all a path)."""
        model = self.model
        if model is None:
            raise RequestRefused(503, self.load_error or "The model is still loading.",
                                 headers={"retry-after": "5"})
        if asked and asked not in (model.model_id, model.identity.name, "palidesk"):
            raise RequestRefused(
                404, f"This server serves {model.model_id!r}; it does not load other models "
                     "on request. Ask for that model, or restart `palidesk serve --model "
                     "NAME`.", "model")
        return model

    def make_job(self, data: bytes, suffix: str, request: TaskRequest,
                 options: GenerationOptions) -> Job:
        path, digest = self.images.save(data, suffix)
        return self.host.make_job(path, request, options, digest, self.mask_decoder)
