"""Everything a worker needs to label images the same way: model, task, options.

Plain, picklable data: the same BatchJob drives the local loop and every Ray worker,
which is what makes their records identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from app.engine.engine import EngineConfig
from app.engine.events import GenerationOptions
from app.model_files.model_folder import ModelFolder, ModelPair
from app.tasks import TaskRequest, build_prompt


@dataclass(frozen=True)
class ModelIdentity:
    """Which model a record came from. ``pair_id`` (written into both GGUF files at
    conversion) identifies the checkpoint wherever its folder lives, so a worker whose
    folder at the same path holds another model is caught."""

    folder: str
    name: str
    pair_id: str
    quantization: str

    @classmethod
    def of(cls, pair: ModelPair) -> ModelIdentity:
        # Absolute but not resolved: a symlink such as /shared/models must stay the path
        # the workers open, not wherever it points on the driver's machine.
        return cls(os.path.abspath(pair.folder), pair.folder.name, pair.pair_id, pair.quant)


@dataclass(frozen=True)
class BatchJob:
    model: ModelIdentity
    request: TaskRequest
    prompt: str
    options: GenerationOptions
    gpu_layers: int = 0
    threads: int | None = None

    @classmethod
    def create(cls, model_folder: str, quant: str | None, request: TaskRequest,
               options: GenerationOptions, gpu_layers: int = 0,
               threads: int | None = None) -> BatchJob:
        """Check the request and the model folder (no model is loaded) and pin both down."""
        prompt = build_prompt(request)
        pair = ModelFolder(model_folder).resolve(quant)
        return cls(ModelIdentity.of(pair), request, prompt, options, gpu_layers, threads)

    def engine_config(self) -> EngineConfig:
        # The same sizing as `palidesk run`, so a batch gives run's tokens.
        return EngineConfig(gpu_layers=self.gpu_layers, threads=self.threads,
                            max_new_tokens_limit=max(512, self.options.max_new_tokens))
