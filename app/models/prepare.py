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

from app.convert.checkpoint import open_checkpoint
from app.convert.converter import convert_checkpoint
from app.errors import ModelFolderError, PaliDeskError
from app.model_files.hf_cache import find_cached_checkpoint, repo_id_of_snapshot
from app.model_files.manifest import MANIFEST_NAME, read_manifest
from app.model_files.model_folder import ModelFolder
from app.models.catalog import (
    VariantDims,
    check_catalog_shapes,
    entry_for_repo,
    read_config_dims,
)
from app.models.disk_space import DISK_MARGIN_BYTES, check_disk_space, gguf_bytes
from app.models.installed import InstalledModels
from app.models.quantize import quantize_folder
from app.progress import CancelFlag, ProgressCallback, ProgressEvent, no_progress
from app.resources import resource_path

RESOURCES = resource_path()
VERIFY_IMAGE = resource_path("verify-image.png")
VERIFY_TOKENS = 4

# (repo_id, destination or None for the HF cache, *, progress, cancel, token, endpoint,
#  quant_types, revision, cache_dir) -> checkpoint folder
Downloader = Callable[..., Path]


@dataclass(frozen=True)
class PrepareRequest:
    """What to prepare. Exactly one of ``repo_id`` (download) or ``local_path`` (import).

    ``use_hf_cache``: download into the Hugging Face cache (shared with transformers)
    rather than into the model's work folder. A checkpoint already complete in the cache
    is converted from there either way. ``cache_dir``: that cache (default: HF_HOME's).
    """

    name: str
    quant_types: tuple[str, ...] = ("Q4_K_M",)
    repo_id: str | None = None
    local_path: Path | None = None
    token: str | None = None
    endpoint: str | None = None
    keep_checkpoint: bool = False
    revision: str = "main"
    use_hf_cache: bool = True
    cache_dir: Path | None = None

    @property
    def source_name(self) -> str:
        """What the model is called in its manifest: the repository id, or for a local
        folder the repository it was cached from, else the folder's own name."""
        if self.repo_id is not None:
            return self.repo_id
        assert self.local_path is not None
        return repo_id_of_snapshot(self.local_path) or Path(self.local_path).resolve().name


def _step(progress: ProgressCallback, stage: str, message: str) -> None:
    progress(ProgressEvent(stage, 0, 1, message))


def verify_model(folder: Path, quant: str | None = None, threads: int | None = None) -> int:
    """Load ``folder`` and generate a few tokens on the built-in image; returns the count."""
    from app.engine.context_size import engine_config
    from app.engine.engine import Engine
    from app.engine.events import GenerationOptions

    engine = Engine()
    try:
        engine.load(ModelFolder(folder).resolve(quant),
                    engine_config(threads=threads, max_new_tokens=VERIFY_TOKENS))
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
    try:
        return _run(request, models, work, progress, cancel, downloader)
    except BaseException:
        # A refusal before anything was made (a gated model, a wrong name) leaves no
        # empty NAME.partial folder behind; real work is kept for the next try.
        if not any(p.is_file() for p in work.rglob("*")):
            shutil.rmtree(work, ignore_errors=True)
        raise


def _run(
    request: PrepareRequest,
    models: InstalledModels,
    work: Path,
    progress: ProgressCallback,
    cancel: CancelFlag,
    downloader: Downloader | None,
) -> Path:
    target = models.folder_for(request.name)
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
            checkpoint = _checkpoint_from_hub(request, work, progress, cancel, downloader)
        else:
            raise ValueError("PrepareRequest needs repo_id or local_path")
        cancel.check("Preparing the model")
        if "F16" not in _done_types(model_dir):
            if request.repo_id is not None:
                check_weights_match_catalog(checkpoint, request.repo_id)
            convert_checkpoint(checkpoint, model_dir, "f16", progress=progress, cancel=cancel,
                               source_name=request.source_name)

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


def _checkpoint_from_hub(
    request: PrepareRequest,
    work: Path,
    progress: ProgressCallback,
    cancel: CancelFlag,
    downloader: Downloader | None,
) -> Path:
    """The checkpoint folder for ``request.repo_id``: the Hugging Face cache's copy when it
    is complete there (no network needed), else a fresh download."""
    assert request.repo_id is not None
    cached = find_cached_checkpoint(request.repo_id, request.revision, request.cache_dir)
    if cached is not None:
        _step(progress, "download",
              f"{request.repo_id} is already in the Hugging Face cache ({cached}): "
              "nothing to download")
        dims = read_config_dims(cached / "config.json", request.repo_id)
        check_catalog_shapes(request.repo_id, dims, "the copy in the Hugging Face cache")
        check_disk_space(work, gguf_bytes(dims, request.quant_types) + DISK_MARGIN_BYTES,
                         "converting the model")
        return cached
    if downloader is None:
        from app.models.download import download_checkpoint as downloader
    return downloader(request.repo_id, None if request.use_hf_cache else work / "checkpoint",
                      progress=progress, cancel=cancel, token=request.token,
                      endpoint=request.endpoint, revision=request.revision,
                      cache_dir=request.cache_dir, convert_dir=work,
                      # the space check covers conversion + quantization too
                      quant_types=list(request.quant_types))


def check_weights_match_catalog(checkpoint: Path, repo_id: str) -> None:
    """Under a catalog name, the weights themselves (not only the config) must have the
    catalog entry's shapes; the converter then checks the config against the weights."""
    if entry_for_repo(repo_id) is None:
        return
    with open_checkpoint(checkpoint) as ck:
        t, v = ck.text, ck.vision
        found = VariantDims(t.hidden, t.intermediate, t.layers, t.heads, t.kv_heads,
                            t.head_dim, image_size=v.image_size, vocab_rows=t.vocab_rows,
                            vision_hidden=v.hidden, vision_intermediate=v.intermediate,
                            vision_layers=v.layers, vision_heads=v.heads, patch=v.patch)
    check_catalog_shapes(repo_id, found, "its weights")


def _done_types(model_dir: Path) -> set[str]:
    if not (model_dir / MANIFEST_NAME).exists():
        return set()
    try:
        return {t.upper() for t in ModelFolder(model_dir).text_types()}
    except ModelFolderError:
        return set()
