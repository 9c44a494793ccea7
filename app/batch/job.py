"""Everything a worker needs to label images the same way: model, task, options.

Plain, picklable data: the same BatchJob drives the local loop and every Ray worker,
which is what makes their records identical. The model identity, the load plan and the
engine's sizing are the core's (``app.session``), as for the window and ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.engine.events import GenerationOptions
from app.session.identity import ModelIdentity, options_key
from app.tasks import TaskRequest, build_prompt

if TYPE_CHECKING:
    from app.engine.engine import EngineConfig


@dataclass(frozen=True)
class BatchJob:
    model: ModelIdentity
    request: TaskRequest
    prompt: str
    options: GenerationOptions
    gpu_layers: int = 0
    threads: int | None = None
    # Segment: big_vision's decoder, as `run` and the window choose it (an absolute path
    # every Ray worker must see, like the model folder); None = boxes only.
    mask_decoder: str | None = None

    @classmethod
    def create(cls, model_folder: str, quant: str | None, request: TaskRequest,
               options: GenerationOptions, gpu_layers: int = 0,
               threads: int | None = None, mask_decoder: str | None = None) -> BatchJob:
        """Check the request and the model folder (no model is loaded) and pin both down."""
        from app.session.load_plan import plan_load

        prompt = build_prompt(request)
        plan = plan_load(model_folder, quant, gpu_layers, threads, options.max_new_tokens,
                         choose_quant=False)
        return cls(ModelIdentity.of(plan.pair), request, prompt, options, gpu_layers, threads,
                   mask_decoder)

    @property
    def options_key(self) -> str:
        return options_key(self.options)

    def engine_config(self) -> EngineConfig:
        # The core's sizing for a limit fixed for the engine's life, as `palidesk run`.
        from app.engine.context_size import engine_config

        return engine_config(self.gpu_layers, self.threads, self.options.max_new_tokens)
