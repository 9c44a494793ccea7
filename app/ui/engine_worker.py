"""The one thread that owns the engine and every llama.cpp object.

The window never calls the engine: it sends intents (load, run, unload, shut down) as
queued signals and gets tokens, objects, results and errors back as signals. Cancel is
the exception: it sets a thread-safe flag directly, because a queued "cancel" would wait
behind the very generation it is meant to stop.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.engine.engine import Engine, EngineConfig
from app.engine.events import GenerationOptions, TokenEvent
from app.engine.llama_library import supports_gpu_offload
from app.errors import PaliDeskError
from app.hardware import detect, format_gb
from app.models.fit import choose
from app.models.model_folder import ModelFolder
from app.progress import CancelFlag
from app.tasks.prompts import TaskRequest
from app.tasks.task_runner import ObjectEvent, TaskResult, run_task

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
    name: str
    quant: str
    image_size: int
    checkpoint_kind: str  # "pt", "mix" or "unknown" (from the source checkpoint's name)
    device: str
    choice: str | None = None  # the automatic choice, in one sentence, when it was made


@dataclass(frozen=True)
class Job:
    job_id: int
    image: Path
    request: TaskRequest
    options: GenerationOptions
    queue_key: str = ""  # the window's queue item this job runs for


def checkpoint_kind(source_name: str) -> str:
    name = source_name.lower()
    if "-mix-" in name or name.endswith("-mix"):
        return "mix"
    if "-pt-" in name or name.endswith("-pt"):
        return "pt"
    return "unknown"


class EngineWorker(QObject):
    """Lives in its own QThread; slots run there, signals arrive in the UI thread."""

    model_loaded = Signal(object)  # LoadedModel
    model_failed = Signal(str)
    model_unloaded = Signal()
    token = Signal(int, str)  # job id, new text
    object_found = Signal(int, object)  # job id, DetectedObject
    job_finished = Signal(int, object)  # job id, TaskResult
    job_failed = Signal(int, str)  # job id, message for the user
    stopped = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self._cancel = CancelFlag()

    def cancel(self) -> None:
        """Stop the running generation before its next token. Safe from any thread."""
        self._cancel.cancel()

    @Slot(object)
    def load_model(self, request: LoadRequest) -> None:
        choice_sentence = None
        try:
            folder = ModelFolder(request.folder)
            quant, config = request.quant, request.config
            if quant is None or request.auto_gpu_layers:
                choice = choose(folder, detect(), available_quants=folder.text_types())
                choice_sentence = choice.sentence
                if quant is None and choice.device != "none":
                    quant = choice.quant
                if request.auto_gpu_layers:
                    # -1 = all layers on the GPU, N = partial offload, 0 = CPU.
                    config = dataclasses.replace(config, gpu_layers=choice.gpu_layers)
            pair = folder.resolve(quant)
            self.engine.load(pair, config)
        except PaliDeskError as exc:
            self.model_failed.emit(str(exc))
            return
        except Exception as exc:  # an unexpected failure must not kill the worker thread
            log.exception("model load failed")
            self.model_failed.emit(f"The model could not be loaded: {exc}")
            return
        threads = self.engine.config.threads
        device = f"CPU · {threads} threads"
        if self.engine.config.gpu_layers != 0 and supports_gpu_offload():
            best = detect().best_gpu()
            device = (f"{best.name} · {format_gb(best.free_bytes)} free" if best is not None
                      else "GPU offload")
        self.model_loaded.emit(LoadedModel(
            folder=Path(request.folder),
            name=str(folder.manifest.source.get("name") or Path(request.folder).name),
            quant=pair.quant,
            image_size=pair.image_size,
            checkpoint_kind=checkpoint_kind(str(folder.manifest.source.get("name", ""))),
            device=device,
            choice=choice_sentence,
        ))

    @Slot(object)
    def run_job(self, job: Job) -> None:
        self._cancel = CancelFlag()
        try:
            for event in run_task(self.engine, job.image, job.request, job.options,
                                  self._cancel):
                if isinstance(event, TokenEvent):
                    self.token.emit(job.job_id, event.text)
                elif isinstance(event, ObjectEvent):
                    self.object_found.emit(job.job_id, event.obj)
                elif isinstance(event, TaskResult):
                    self.job_finished.emit(job.job_id, event)
        except PaliDeskError as exc:
            self.job_failed.emit(job.job_id, str(exc))
        except Exception as exc:
            log.exception("task failed")
            self.job_failed.emit(job.job_id, f"The task failed unexpectedly: {exc}")

    @Slot()
    def unload(self) -> None:
        self.engine.unload()
        self.model_unloaded.emit()

    @Slot()
    def shut_down(self) -> None:
        """Free the llama.cpp objects in the thread that made them, then end the thread."""
        self.engine.unload()
        self.stopped.emit()
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()


# Every EngineThread alive, so tests can fail when one is left running.
LIVE_THREADS: weakref.WeakSet[EngineThread] = weakref.WeakSet()


class EngineThread(QObject):
    """Starts the worker's thread and carries the window's intents to it."""

    load_requested = Signal(object)
    run_requested = Signal(object)
    unload_requested = Signal()
    shutdown_requested = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("PaliDesk engine")
        self.worker = EngineWorker()
        self.worker.moveToThread(self.thread)
        self.load_requested.connect(self.worker.load_model)
        self.run_requested.connect(self.worker.run_job)
        self.unload_requested.connect(self.worker.unload)
        self.shutdown_requested.connect(self.worker.shut_down)
        self.thread.start()
        LIVE_THREADS.add(self)

    def cancel(self) -> None:
        self.worker.cancel()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Cancel, release the model in its thread and join it. True if it ended."""
        if not self.thread.isRunning():
            return True
        self.worker.cancel()
        self.shutdown_requested.emit()
        return self.thread.wait(timeout_ms)
