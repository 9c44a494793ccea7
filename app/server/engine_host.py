"""Every call the server makes into the session core and the CLI's helpers, in one place.

The core is being consolidated (one model resolver, one load planner, one ``run --json``
record builder); keeping all of the server's calls here means re-pointing this one file
when that lands. Everything else in ``app.server`` talks to ``EngineHost`` and the plain
data types below, never to ``app.engine``, ``app.cli`` or ``app.session`` directly.

Where each call goes once core16's API lands (its CORE_API.md): ``plan_model`` →
``app.session.model_resolver.resolve_model`` + ``app.session.load_plan.plan_load``
(``LoadPlan.pair/.config/.choice/.identity``); ``EngineHost._load`` → ``engine.load(plan.pair,
plan.config)``; ``make_job`` → ``app.session.new_job(..., skip_if_done=False)``;
``run_record`` → ``app.session.result_json.stored_record`` restricted to
``RUN_RECORD_KEYS``; ``answer_text`` → ``app.tasks.output_text.without_end_marker``.

The llama.cpp objects live only on the queue's worker thread: ``EngineHost.run`` (and the
load, which is the first job of the queue) is only ever called there.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.engine.embedding_cache import ImageEmbeddingCache
from app.engine.engine import Engine, EngineConfig
from app.engine.events import GenerationOptions, TokenEvent
from app.errors import PaliDeskError
from app.history.history_record import HistoryRecord
from app.session.identity import ModelIdentity
from app.session.job import Job, JobOutcome, JobStarted
from app.session.job_runner import execute_job
from app.session.result_store import ResultStore
from app.tasks import TaskKind, TaskRequest
from app.tasks.task_runner import ObjectEvent

log = logging.getLogger("palidesk.server")

# The server's image-embedding cache: enough for the same image asked again (Label
# Studio asks once per control, clients retry), not the window's 512 MB, which a
# server of distinct images would only fill (one 3B-224 image: 2.4 MB of rows).
SERVED_CACHE_BYTES = 32 << 20

# The keys of `palidesk run --json`'s record (TaskResult.to_json), in its order.
RUN_RECORD_KEYS = ("image", "task", "prompt", "tokens", "text", "objects", "stop_reason",
                   "image_size", "timings")


@dataclass(frozen=True)
class ModelPlan:
    """What to load: the folder, the quantization (None = automatic) and the engine's
    settings; ``auto_gpu_layers`` lets the fit estimate choose the offload, as the
    window does when its setting is "automatic"."""

    folder: Path
    quant: str | None
    config: EngineConfig
    auto_gpu_layers: bool


@dataclass(frozen=True)
class LoadedModel:
    """What the server says about the model it serves."""

    folder: Path
    identity: ModelIdentity
    choice: str | None  # the automatic choice in one sentence, when one was made

    @property
    def model_id(self) -> str:
        """The name clients send as ``model``: the folder's name."""
        return self.folder.name

    @property
    def version(self) -> str:
        return f"{self.identity.name} {self.identity.quant}"


@dataclass(frozen=True)
class LoadModel:
    """The queue's first job: load ``plan`` on the worker thread."""

    plan: ModelPlan


@dataclass(frozen=True)
class ServedToken:
    """A token as a client sees it: ``text`` is "" for the end marker (``<eos>``), which
    `palidesk run` does not print either."""

    text: str
    index: int


@dataclass(frozen=True)
class LoadFinished:
    model: LoadedModel | None
    error: str = ""


def plan_model(model: str, quant: str | None, gpu_layers: int | None,
               threads: int | None) -> ModelPlan:
    """Resolve ``--model NAME|DIR`` to a folder (raises ModelFolderError in words) and
    pin down how to load it; nothing is loaded yet."""
    from app.cli.model_argument import resolve_model_argument
    from app.models.model_folder import ModelFolder

    folder = resolve_model_argument(model)
    if quant is not None:
        ModelFolder(folder).resolve(quant)  # a missing quantization is said before serving
    return ModelPlan(folder, quant, EngineConfig(gpu_layers=gpu_layers or 0, threads=threads),
                     auto_gpu_layers=gpu_layers is None)


def request_for(task: str, prompt: str | None, lang: str, caption_style: str,
                classes: str) -> TaskRequest:
    """A task request from `palidesk run`'s task options (raises TaskError in words)."""
    from app.cli.run_command import request_from_args
    from app.tasks import build_prompt

    request = request_from_args(argparse.Namespace(
        task=task, prompt=prompt, lang=lang, caption_style=caption_style, classes=classes))
    build_prompt(request)  # refuse a bad combination now, not on the worker
    return request


def request_from_prompt(prompt: str) -> TaskRequest:
    """The task a raw PaliGemma prompt asks for, so a served result is stored as the
    window's would be: ``caption en``, ``ocr``, ``answer en …``, ``question en …``,
    ``detect cat ; dog`` and ``segment car`` become those tasks (detect and segment
    answers are parsed into objects, their names joined by " ; "); any other text runs verbatim, as
    `palidesk run --task custom --prompt` runs it."""
    from app.errors import TaskError
    from app.tasks import build_prompt

    text = prompt.strip()
    word, _, rest = text.partition(" ")
    word = word.lower()
    lang, _, words = rest.partition(" ")
    guesses = {
        "caption": ("caption", None, lang, word, ""), "cap": ("caption", None, lang, word, ""),
        "describe": ("caption", None, lang, word, ""), "ocr": ("ocr", None, "en", "caption", ""),
        "answer": ("ask", words, lang, "caption", ""),
        "question": ("question", words, lang, "caption", ""),
        "detect": ("detect", None, "en", "caption", rest),
        "segment": ("segment", None, "en", "caption", rest),
    }
    if word in guesses:
        try:
            request = request_for(*guesses[word])
            # Object names are written as the checkpoints were trained ("a ; b"), as
            # the window writes them; the other prompts must match exactly.
            if build_prompt(request) == text or request.kind.is_spatial:
                return request
        except TaskError:
            pass  # not one of the trained tasks' prompts: run it as written
    return request_for("custom", prompt, "en", "caption", "")


def run_record(record: HistoryRecord) -> dict[str, object]:
    """`palidesk run --json`'s record of a stored result (same keys, same values)."""
    full = record.to_dict()
    return {key: full[key] for key in RUN_RECORD_KEYS}


def answer_text(record: HistoryRecord) -> str:
    """The answer as `palidesk run` prints it: the text without the end marker."""
    return record.text.removesuffix("<eos>")


def installed_model_names() -> list[str]:
    """The names of the installed models (`palidesk models list`)."""
    from app.models.installed import InstalledModels
    from app.settings import SettingsStore, default_settings_path

    models_dir = Path(SettingsStore(default_settings_path()).load().settings.models_dir)
    return [m.name for m in InstalledModels(models_dir).list()]


def installed_mask_decoder() -> Path | None:
    """The installed segment-mask decoder, as `palidesk run` finds it (None = boxes only)."""
    from app.cli.models_command import models_dir_from
    from app.models.mask_decoder import installed_decoder

    return installed_decoder(models_dir_from(argparse.Namespace()))


class _DiscardedHistory:
    """``--no-history``: results are answered and never written."""

    def add(self, record: HistoryRecord) -> None:
        return None


def open_results(keep_history: bool) -> ResultStore:
    """The history the window and `batch` read, or nothing with ``--no-history``."""
    if not keep_history:
        return ResultStore(_DiscardedHistory())  # type: ignore[arg-type]
    from app.history import HistoryStore
    from app.history.history_store import default_history_path

    return ResultStore(HistoryStore(default_history_path()))


class EngineHost:
    """The engine and the history, driven from the queue's worker thread."""

    def __init__(self, results: ResultStore | None, first_job_id: int = 1) -> None:
        # The window's server runs its jobs on the window's engine: no engine of its own.
        self.engine = (Engine(ImageEmbeddingCache(SERVED_CACHE_BYTES))
                       if results is not None else None)
        self.results = results
        self.model: LoadedModel | None = None
        # Apart from the window's own job ids, when the jobs share the window's engine.
        self._ids = itertools.count(first_job_id)

    def make_job(self, image: Path, request: TaskRequest, options: GenerationOptions,
                 image_sha256: str, mask_decoder: Path | None) -> Job:
        """A job of the core for the served model (raises RuntimeError before a load)."""
        if self.model is None:
            raise RuntimeError("no model is loaded")
        return Job(next(self._ids), image, request, options, self.model.identity,
                   image_sha256=image_sha256,
                   mask_decoder=mask_decoder if request.kind == TaskKind.SEGMENT else None)

    def run(self, job: Job | LoadModel, sink: Callable[[object], None]) -> None:
        """The queue's runner: load a model, or run a job and stream its events."""
        assert self.engine is not None and self.results is not None
        if isinstance(job, LoadModel):
            sink(self._load(job.plan))
            return
        for event in execute_job(self.engine, job, self.results):
            if isinstance(event, TokenEvent):
                text = "" if self.engine.is_end(event.token_id) else event.text
                sink(ServedToken(text, event.index))
            elif isinstance(event, ObjectEvent | JobOutcome | JobStarted):
                sink(event)

    def close(self) -> None:
        """Free the model (call once the worker thread has ended)."""
        if self.engine is not None:
            self.engine.close()

    def _load(self, plan: ModelPlan) -> LoadFinished:
        # The window's rule (app/ui/engine_worker.py): the fit estimate picks the
        # quantization when none is named, and the GPU layers when they are automatic.
        from app.hardware import detect
        from app.models.fit import choose
        from app.models.model_folder import ModelFolder

        assert self.engine is not None
        choice_sentence = None
        try:
            folder = ModelFolder(plan.folder)
            quant, config = plan.quant, plan.config
            if quant is None or plan.auto_gpu_layers:
                choice = choose(folder, detect(), available_quants=folder.text_types())
                choice_sentence = choice.sentence
                if quant is None and choice.device != "none":
                    quant = choice.quant
                if plan.auto_gpu_layers:
                    config = dataclasses.replace(config, gpu_layers=choice.gpu_layers)
            if plan.quant is not None:
                choice_sentence = None  # the user named it: nothing was chosen for them
            pair = folder.resolve(quant)
            self.engine.load(pair, config)
        except Exception as exc:
            self.engine.unload()
            if not isinstance(exc, PaliDeskError):
                log.exception("model load failed")
            return LoadFinished(None, str(exc))
        name = str(folder.manifest.source.get("name") or plan.folder.name)
        self.model = LoadedModel(plan.folder, ModelIdentity(pair.pair_id, name, pair.quant),
                                 choice_sentence)
        return LoadFinished(self.model)
