"""The one thread that owns the engine and every llama.cpp object.

The window never calls the engine: it sends intents (load, run, prefetch, shut down) as
queued signals and gets tokens, objects and job outcomes back as signals. What a job
does — skip, run, store — is decided by the Qt-free ``app.session.job_runner``. Cancel
is the exception to "signals only": each job carries its own thread-safe flag, which the
window sets directly, because a queued "cancel" would wait behind the very generation it
is meant to stop.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from app.engine.engine import Engine, EngineConfig
from app.engine.events import TokenEvent
from app.engine.llama_library import supports_gpu_offload
from app.errors import PaliDeskError
from app.hardware import detect, format_gb
from app.history import HistoryStore
from app.model_files.model_folder import ModelFolder
from app.session.identity import ModelIdentity
from app.session.job import Job, JobOutcome, JobStarted
from app.session.job_runner import execute_job
from app.session.load_plan import plan_load
from app.session.result_store import ResultStore
from app.tasks.task_runner import ObjectEvent

log = logging.getLogger("palidesk.ui")


@dataclass(frozen=True)
class LoadRequest:
    folder: Path
    quant: str | None  # None = automatic: the fit estimate chooses for this machine
    config: EngineConfig
    auto_gpu_layers: bool = True  # let the fit estimate choose the GPU layers too


@dataclass(frozen=True)
class LoadedModel:
    """What the window shows about the loaded model."""

    folder: Path
    identity: ModelIdentity
    image_size: int
    checkpoint_kind: str  # "pt", "mix" or "unknown" (from the source checkpoint's name)
    device: str
    choice: str | None = None  # the automatic choice, in one sentence, when it was made

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def quant(self) -> str:
        return self.identity.quant


def checkpoint_kind(source_name: str) -> str:
    name = source_name.lower().rsplit("/", 1)[-1]
    if "-mix-" in name or name.endswith("-mix"):
        return "mix"
    if "-pt-" in name or name.endswith("-pt"):
        return "pt"
    return "unknown"


def device_text(threads: int) -> str:
    return f"CPU · {threads} thread" + ("" if threads == 1 else "s")


class EngineWorker(QObject):
    """Lives in its own QThread; slots run there, signals arrive in the UI thread."""

    model_loaded = Signal(object)  # LoadedModel
    model_failed = Signal(str)  # the reason; no model is loaded afterwards
    token = Signal(int, str)  # job id, new text
    object_found = Signal(int, object)  # job id, DetectedObject
    job_started = Signal(int)  # job id
    job_ended = Signal(object)  # JobOutcome

    def __init__(self, store: ResultStore) -> None:
        super().__init__()
        self.engine = Engine()
        self.store = store
        self._prefetch: list[Path] = []
        # Intents sent but not yet handled: prefetching yields to them between images.
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    def intent_sent(self) -> None:
        """Called (from the UI thread) just before a load or job is emitted."""
        with self._waiting_lock:
            self._waiting += 1

    def _intent_taken(self) -> None:
        with self._waiting_lock:
            self._waiting = max(0, self._waiting - 1)

    @property
    def busy(self) -> bool:
        with self._waiting_lock:
            return self._waiting > 0

    @Slot(object)
    def load_model(self, request: LoadRequest) -> None:
        self._intent_taken()
        self._prefetch = []
        choice_sentence = None
        try:
            folder = ModelFolder(request.folder)
            # The core's load planner, as for run, batch, eval and the server.
            plan = plan_load(folder, request.quant,
                             None if request.auto_gpu_layers else request.config.gpu_layers)
            choice_sentence = plan.choice
            pair = plan.pair
            config = dataclasses.replace(request.config, gpu_layers=plan.config.gpu_layers)
            self.engine.load(pair, config)
        except Exception as exc:
            # One defined state after any failed load: no model (the old one is freed too,
            # so nothing runs on a model the window no longer names).
            self.engine.unload()
            if not isinstance(exc, PaliDeskError):
                log.exception("model load failed")
            message = str(exc) if isinstance(exc, PaliDeskError) else (
                f"The model could not be loaded: {exc}")
            self.model_failed.emit(message)
            return
        name = plan.name
        threads = self.engine.config.threads or 1
        device = device_text(threads)
        if self.engine.config.gpu_layers != 0 and supports_gpu_offload():
            best = detect().best_gpu()
            device = (f"{best.name} · {format_gb(best.free_bytes)} free" if best is not None
                      else "GPU offload")
        self.model_loaded.emit(LoadedModel(
            folder=Path(request.folder),
            identity=plan.identity,
            image_size=pair.image_size,
            checkpoint_kind=checkpoint_kind(name),
            device=device,
            choice=choice_sentence,
        ))

    @Slot(object)
    def run_job(self, job: Job) -> None:
        self._intent_taken()
        for event in execute_job(self.engine, job, self.store):
            if isinstance(event, JobStarted):
                self.job_started.emit(job.job_id)
            elif isinstance(event, TokenEvent):
                self.token.emit(job.job_id, event.text)
            elif isinstance(event, ObjectEvent):
                self.object_found.emit(job.job_id, event.obj)
            elif isinstance(event, JobOutcome):
                self.job_ended.emit(event)
        self._schedule_prefetch()

    @Slot(object)
    def prefetch(self, paths: list[Path]) -> None:
        """Encode ``paths`` into the image cache while nothing else is asked for."""
        self._prefetch = list(paths)
        self._schedule_prefetch()

    def _schedule_prefetch(self) -> None:
        if self._prefetch:
            # One image per event: a job or load sent meanwhile is handled before the next.
            QTimer.singleShot(0, self._prefetch_one)

    def _prefetch_one(self) -> None:
        if not self._prefetch or self.busy or not self.engine.loaded:
            return
        path = self._prefetch.pop(0)
        try:
            self.engine.image_rows(path)
        except Exception as exc:  # an unreadable image is reported when it is run
            log.debug("prefetch of %s skipped: %s", path, exc)
        self._schedule_prefetch()

    @Slot()
    def shut_down(self) -> None:
        """Free the llama.cpp objects in the thread that made them, then end the thread."""
        self._prefetch = []
        self.engine.unload()
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()


# Every EngineThread alive, so tests can fail when one is left running.
LIVE_THREADS: weakref.WeakSet[EngineThread] = weakref.WeakSet()


class EngineThread(QObject):
    """Starts the worker's thread and carries the window's intents to it."""

    load_requested = Signal(object)
    run_requested = Signal(object)
    prefetch_requested = Signal(object)
    shutdown_requested = Signal()

    def __init__(self, history: HistoryStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("PaliDesk engine")
        self.worker = EngineWorker(ResultStore(history))
        self.worker.moveToThread(self.thread)
        self.load_requested.connect(self.worker.load_model)
        self.run_requested.connect(self.worker.run_job)
        self.prefetch_requested.connect(self.worker.prefetch)
        self.shutdown_requested.connect(self.worker.shut_down)
        self.thread.start()
        LIVE_THREADS.add(self)

    def load(self, request: LoadRequest) -> None:
        self.worker.intent_sent()
        self.load_requested.emit(request)

    def run(self, job: Job) -> None:
        self.worker.intent_sent()
        self.run_requested.emit(job)

    def prefetch(self, paths: list[Path]) -> None:
        self.prefetch_requested.emit(paths)

    def request_stop(self) -> None:
        """Ask the worker to free the model and end its thread once it is free."""
        if self.thread.isRunning():
            self.shutdown_requested.emit()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Ask the worker to end and wait for it. True if it ended (tests, shutdown)."""
        self.request_stop()
        return self.thread.wait(timeout_ms)
