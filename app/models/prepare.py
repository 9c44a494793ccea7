"""Prepare a model: download -> convert -> quantize -> verify -> register.

Every step reports progress through one callback, can be cancelled, and works in
``<models>/<name>.partial/`` so nothing half-made is ever listed as installed. Re-running
after a failure or a cancel continues where it stopped: the download resumes, a finished
conversion or quantization is kept.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.convert.converter import convert_checkpoint
from app.errors import ModelFolderError, PaliDeskError
from app.models.installed import InstalledModels
from app.models.manifest import MANIFEST_NAME, read_manifest
from app.models.model_folder import ModelFolder
from app.models.quantize import quantize_folder
from app.progress import CancelFlag, ProgressCallback, ProgressEvent, no_progress
from app.resources import resource_path

RESOURCES = resource_path()
VERIFY_IMAGE = resource_path("verify-image.png")
VERIFY_TOKENS = 4

# (repo_id, destination, progress, cancel, token, endpoint) -> checkpoint folder
Downloader = Callable[..., Path]


@dataclass(frozen=True)
class PrepareRequest:
    """What to prepare. Exactly one of ``repo_id`` (download) or ``local_path`` (import)."""

    name: str
    quant_types: tuple[str, ...] = ("Q4_K_M",)
    repo_id: str | None = None
    local_path: Path | None = None
    token: str | None = None
    endpoint: str | None = None
    keep_checkpoint: bool = False


def _step(progress: ProgressCallback, stage: str, message: str) -> None:
    progress(ProgressEvent(stage, 0, 1, message))


def verify_model(folder: Path, quant: str | None = None, threads: int | None = None) -> int:
    """Load ``folder`` and generate a few tokens on the built-in image; returns the count."""
    from app.engine.engine import Engine, EngineConfig
    from app.engine.events import GenerationOptions

    engine = Engine()
    try:
        engine.load(ModelFolder(folder).resolve(quant), EngineConfig(threads=threads))
        result = engine.run(VERIFY_IMAGE, "caption en",
                            GenerationOptions(max_new_tokens=VERIFY_TOKENS, stop_at_eos=False))
    finally:
        engine.close()
    if not result.tokens:
        raise PaliDeskError(f"The model in {folder} loaded but generated nothing.")
    return len(result.tokens)


def _is_palidesk_folder(path: Path) -> bool:
    return (path / MANIFEST_NAME).exists()


def prepare_model(
    request: PrepareRequest,
    models: InstalledModels,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelFlag | None = None,
    downloader: Downloader | None = None,
) -> Path:
    """Run the pipeline for ``request``; returns the installed model folder."""
    cancel = cancel or CancelFlag()
    target = models.folder_for(request.name)
    if target.exists():
        raise ModelFolderError(
            f"A model called {request.name!r} is already installed; remove it first or "
            "choose another name."
        )
    work = models.work_folder_for(request.name)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "model"

    if request.local_path is not None and _is_palidesk_folder(request.local_path):
        _step(progress, "import", f"copying {request.local_path}")
        if not model_dir.exists():
            read_manifest(request.local_path)  # refuse a damaged folder before copying
            shutil.copytree(request.local_path, work / "model.copying", dirs_exist_ok=True)
            os.replace(work / "model.copying", model_dir)
        checkpoint = None
    else:
        if request.local_path is not None:
            checkpoint = Path(request.local_path)
        elif request.repo_id is not None:
            if downloader is None:
                from app.models.download import download_checkpoint as downloader
            checkpoint = downloader(request.repo_id, work / "checkpoint", progress=progress,
                                    cancel=cancel, token=request.token,
                                    endpoint=request.endpoint,
                                    # the space check covers conversion + quantization too
                                    quant_types=list(request.quant_types))
        else:
            raise ValueError("PrepareRequest needs repo_id or local_path")
        cancel.check("Preparing the model")
        if "F16" not in _done_types(model_dir):
            convert_checkpoint(checkpoint, model_dir, "f16", progress=progress, cancel=cancel)

    for quant in request.quant_types:
        cancel.check("Preparing the model")
        if quant.upper() not in _done_types(model_dir):
            quantize_folder(model_dir, quant, progress=progress, cancel=cancel)

    cancel.check("Preparing the model")
    _step(progress, "verify", "loading the model and generating a few tokens")
    verify_model(model_dir, request.quant_types[0] if request.quant_types else None)
    cancel.check("Preparing the model")

    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(model_dir, target)
    if request.keep_checkpoint and checkpoint is not None and checkpoint.is_relative_to(work):
        os.replace(checkpoint, target / "checkpoint")
    shutil.rmtree(work, ignore_errors=True)
    progress(ProgressEvent("done", 1, 1, f"installed {request.name}"))
    return target


def _done_types(model_dir: Path) -> set[str]:
    if not (model_dir / MANIFEST_NAME).exists():
        return set()
    try:
        return {t.upper() for t in ModelFolder(model_dir).text_types()}
    except ModelFolderError:
        return set()
