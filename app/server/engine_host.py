"""Every call the server makes into the session core, in one place.

A served request goes the way CORE_API.md describes: ``resolve_model`` →
``plan_load`` (the automatic quantization and GPU layers when none are named, and the
window's context: ``app.engine.context_size`` for any max tokens, as requests change it
without a reload) → ``Engine.load`` → ``new_job`` → ``execute_job`` on the history's
``ResultStore`` → the stored record as ``result_json.stored_record`` gives it.

The llama.cpp objects live only on the queue's worker thread: ``EngineHost.run`` (and the
load, which is the first job of the queue, so the fit estimate runs there too) is only
ever called there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.engine.embedding_cache import ImageEmbeddingCache
from app.engine.engine import Engine
from app.engine.events import GenerationOptions, TokenEvent
from app.errors import PaliDeskError
from app.history.history_record import HistoryRecord
from app.session.identity import ModelIdentity
from app.session.job import Job, JobOutcome, JobStarted, new_job
from app.session.job_runner import execute_job
from app.session.result_json import stored_record
from app.session.result_store import ResultStore
from app.tasks import TaskKind, TaskRequest
from app.tasks.output_text import without_end_marker
from app.tasks.task_options import checked_request
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
    """What to load, as asked: the resolved folder, the quantization and GPU layers (None =
    the fit estimate's choice, made by ``plan_load`` on the worker) and the threads."""

    folder: Path
    quant: str | None
    gpu_layers: int | None
    threads: int | None


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
        """Label Studio's ``model_version``: the model and its quantization."""
        # Imported here: labeltools needs the server extra (defusedxml), and the window
        # imports this module before it checks the extra is installed.
        from app.labeltools.ls_predictions import model_version

        return model_version(self.identity.name, self.identity.quant)


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
    check a named quantization is there; nothing is loaded or chosen yet."""
    from app.model_files.model_folder import ModelFolder
    from app.session.model_resolver import resolve_model

    folder = resolve_model(model)
    if quant is not None:
        ModelFolder(folder).resolve(quant)  # a missing quantization is said before serving
    return ModelPlan(folder, quant, gpu_layers, threads)


def request_for(task: str, prompt: str | None, lang: str, caption_style: str,
                classes: str) -> TaskRequest:
    """A task request from `palidesk run`'s task options (raises TaskError in words)."""
    return checked_request(task, prompt, lang, caption_style, classes)


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
    full = stored_record(record)
    return {key: full[key] for key in RUN_RECORD_KEYS}


def answer_text(record: HistoryRecord) -> str:
    """The answer as `palidesk run` prints it: the text without the end marker."""
    return without_end_marker(record.text)


def installed_model_names() -> list[str]:
    """The names of the installed models (`palidesk models list`)."""
    from app.models.installed import InstalledModels
    from app.session.model_resolver import models_dir_from_settings

    return [m.name for m in InstalledModels(models_dir_from_settings()).list()]


def installed_mask_decoder() -> Path | None:
    """The installed segment-mask decoder, as `palidesk run` finds it (None = boxes only)."""
    from app.session.load_plan import choose_mask_decoder

    return choose_mask_decoder(True)[0]


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

    def __init__(self, results: ResultStore | None) -> None:
        # The window's server runs its jobs on the window's engine: no engine of its own.
        self.engine = (Engine(ImageEmbeddingCache(SERVED_CACHE_BYTES))
                       if results is not None else None)
        self.results = results
        self.model: LoadedModel | None = None

    def make_job(self, image: Path, request: TaskRequest, options: GenerationOptions,
                 image_sha256: str, mask_decoder: Path | None) -> Job:
        """A job of the core for the served model (raises RuntimeError before a load)."""
        if self.model is None:
            raise RuntimeError("no model is loaded")
        # Every request runs (a client asked for an answer and its timings now); its ids
        # are apart from the window's own when the jobs share the window's engine.
        return new_job(image, request, options, self.model.identity, skip_if_done=False,
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
        # The core's load planner, as the window's: the fit estimate picks what was not
        # named; the context holds the largest max tokens (requests change it freely).
        from app.session.load_plan import plan_load

        assert self.engine is not None
        try:
            loading = plan_load(plan.folder, plan.quant, plan.gpu_layers, plan.threads)
            self.engine.load(loading.pair, loading.config)
        except Exception as exc:
            self.engine.unload()
            if not isinstance(exc, PaliDeskError):
                log.exception("model load failed")
            return LoadFinished(None, str(exc))
        # A quantization the user named was not chosen for them: no sentence about it.
        choice = loading.choice if plan.quant is None else None
        self.model = LoadedModel(plan.folder, loading.identity, choice)
        return LoadFinished(self.model)
