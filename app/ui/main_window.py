"""The PaliDesk window: queue (left), image (centre), task and results (right).

A view: what runs, what is skipped and what a result is are decided by ``app.session``
(Qt-free); results are read from the history store, the one home of every result. The
window turns user actions into session calls, sends the jobs they return to the worker,
and shows what comes back.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.build_info import gpu_build_advice
from app.engine.engine import EngineConfig
from app.history import HistoryStore
from app.models.mask_decoder import MISSING_NOTICE
from app.session import Job, JobOutcome, ResultStore, Session
from app.session.load_plan import (
    choose_mask_decoder,
    engine_config,
    quant_from_setting,
    quant_from_settings,
)
from app.session.model_choice import ModelRequest, model_display_name, remember_loaded
from app.session.prefetch import prefetch_order
from app.session.session import options_from_settings
from app.settings import Settings, SettingsStore
from app.tasks.prompts import TaskKind
from app.ui.drop_target import ImageDropMixin
from app.ui.engine_worker import EngineThread, LoadedModel, LoadRequest
from app.ui.failures import failure_text
from app.ui.first_run_panel import FirstRunPanel
from app.ui.image_queue import ImageQueue, QueueItem
from app.ui.image_view import ImageView
from app.ui.job_display import JobDisplay
from app.ui.notice_bar import NoticeBar
from app.ui.results_panel import ResultsPanel
from app.ui.status_line import StatusLine
from app.ui.task_panel import TaskPanel
from app.ui.tools_menu import add_tools_menu
from app.ui.window_dialogs import WindowDialogsMixin
from app.ui.window_menus import build_menus
from app.ui.window_state import remember_window, restore_window


class MainWindow(ImageDropMixin, WindowDialogsMixin, QMainWindow):
    """The application window. ``engine_thread`` is created here unless a test passes one."""

    def __init__(self, settings_store: SettingsStore, history: HistoryStore,
                 cache_dir: Path, engine_thread: EngineThread | None = None) -> None:
        super().__init__()
        self.setWindowTitle("PaliDesk")
        self.setAcceptDrops(True)
        self.settings_store = settings_store
        loaded = settings_store.load()
        self.settings: Settings = loaded.settings
        self.history = history
        self.results = ResultStore(history)
        self.session = Session()
        self.cache_dir = cache_dir
        self.engine = engine_thread or EngineThread(history, self)
        self.model: LoadedModel | None = None
        self._requested: ModelRequest | None = None  # the load under way, saved if it works
        self._closing = False
        self._build_widgets()
        self.actions_ = build_menus(self)
        self.tools_menu = add_tools_menu(self, lambda: Path(self.settings.model_folder)
                                         if self.settings.model_folder else None)
        self._connect()
        self.task_panel.load_settings(self.settings)
        restore_window(self, self.settings)
        for warning in (gpu_build_advice(), loaded.warning, history.warning):
            if warning:
                self.notices.show_notice(warning)
        self._update_run_state()
        if self.settings.model_folder:
            self.load_model(Path(self.settings.model_folder))
        else:
            self.first_run.show_no_model()

    @property
    def loading(self) -> bool:
        return self.session.loading

    # --- construction ------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.queue = ImageQueue(cache_dir=self.cache_dir)
        self.view = ImageView()
        self.task_panel = TaskPanel()
        self.results_panel = ResultsPanel()
        self.first_run = FirstRunPanel()
        self.notices = NoticeBar()
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.notices, self.first_run):
            centre_layout.addWidget(widget)
        centre_layout.addWidget(self.view, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.task_panel)
        right.addWidget(self.results_panel)
        right.setStretchFactor(1, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for widget in (self.queue, centre, right):
            self.splitter.addWidget(widget)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 640, 380])
        self.setCentralWidget(self.splitter)
        self.status = StatusLine(self.statusBar())
        self.display = JobDisplay(self.queue, self.view, self.results_panel, self.notices,
                                  self.results)
        self.resize(1280, 800)

    def _connect(self) -> None:
        worker = self.engine.worker
        worker.model_loaded.connect(self._on_model_loaded)
        worker.model_failed.connect(self._on_model_failed)
        worker.job_started.connect(self._on_job_started)
        # Bound methods of this QObject, not lambdas: those would run in the worker thread.
        worker.token.connect(self._on_token)
        worker.object_found.connect(self._on_object)
        worker.job_ended.connect(self._on_job_ended)
        self.engine.thread.finished.connect(self._on_engine_stopped)
        self.queue.current_changed.connect(self._on_current_changed)
        self.queue.items_changed.connect(self._update_run_state)
        self.queue.notice.connect(self.notices.show_notice)
        self.task_panel.request_changed.connect(self._update_run_state)
        self.task_panel.run_requested.connect(self.run_current)
        self.task_panel.run_all_requested.connect(self.run_all)
        self.task_panel.cancel_requested.connect(self.cancel)
        self.first_run.choose_folder_requested.connect(self.choose_model_folder)
        self.first_run.models_requested.connect(self.show_models)

    # --- model -------------------------------------------------------------------------

    def engine_config(self) -> EngineConfig:
        s = self.settings
        # The context holds the largest "Max new tokens" allowed: changing it needs no reload.
        return engine_config(gpu_layers=-1 if s.gpu_layers is None else s.gpu_layers,
                             threads=s.threads, max_new_tokens=None)

    def load_model(self, folder: Path, quantization: str | None = None) -> None:
        """Load (or swap to) ``folder`` with ``quantization`` (default: the settings'),
        via the worker; both are remembered once the model has loaded."""
        setting = quantization if quantization is not None else self.settings.quantization
        self._requested = ModelRequest(folder, setting)
        quant = quant_from_setting(setting)  # None: the core's automatic choice
        self.session.loading_started()
        name = model_display_name(folder)  # the name it has once loaded, too
        self.status.show_loading(name)
        if self.model is None:
            self.first_run.show_loading(name)
        self.status.show_batch(self.session.batch)
        self._update_run_state()
        self.engine.load(LoadRequest(folder, quant, self.engine_config(),
                                     auto_gpu_layers=self.settings.gpu_layers is None))

    def _on_model_loaded(self, model: LoadedModel) -> None:
        if self._closing:
            return
        self.model = model
        request = self._requested
        if request is None or Path(request.folder) != Path(model.folder):
            request = ModelRequest(model.folder, self.settings.quantization)
        remembered = remember_loaded(self.settings, request)
        if remembered is not None:  # saved once it proved good
            self.settings = remembered
            self._save_settings()
        self.first_run.hide()
        self.notices.clear_error()
        self.status.show_model(f"{model.name} · {model.quant} · {model.image_size} px",
                               model.device, model.choice or "")
        if model.choice and quant_from_settings(self.settings) is None:
            self.status.show_message(model.choice)  # until a batch has something to say
        self.task_panel.set_checkpoint_kind(model.checkpoint_kind)
        self._send(self.session.model_loaded(model.identity))
        self._prefetch()

    def _on_model_failed(self, message: str) -> None:
        self.session.model_failed(message)
        self.model = None
        self.status.show_no_model()
        self.first_run.show_no_model()
        self.notices.show_notice(f"No model is loaded: {message}", error=True)
        self.status.show_batch(self.session.batch)
        self._update_run_state()

    # --- running -----------------------------------------------------------------------

    def _update_run_state(self) -> None:
        reason = self.session.blocker(bool(self.queue.runnable_items()),
                                      self.task_panel.request() is not None)
        self.task_panel.set_busy(self.session.busy)
        self.task_panel.set_run_enabled(not reason, reason)
        current = self.queue.current()
        self.actions_.run.setEnabled(not reason and current is not None
                                     and current.status != "error")
        self.actions_.run_all.setEnabled(not reason)
        self.actions_.cancel.setEnabled(self.session.busy)

    def _job(self, item: QueueItem, skip_if_done: bool, decoder: Path | None = None
             ) -> Job | None:
        request = self.task_panel.request()
        if request is None or self.session.model is None:
            return None
        return self.session.make_job(item.path, request, options_from_settings(self.settings),
                                     item.key, item.sha256, skip_if_done, decoder)

    def _mask_decoder(self) -> Path | None:
        """Segment draws masks with big_vision's decoder; without it, boxes and a notice."""
        request = self.task_panel.request()
        if request is None or request.kind != TaskKind.SEGMENT:
            return None
        decoder, _problem = choose_mask_decoder(True, self.settings.models_dir)
        if decoder is None:
            self.notices.show_notice(MISSING_NOTICE, action=("Get Mask Decoder…",
                                                             self.show_models))
        return decoder

    def run_current(self) -> None:
        item = self.queue.current()
        if item is not None and item.status != "error" and self.session.can_run():
            job = self._job(item, skip_if_done=False, decoder=self._mask_decoder())
            if job is not None:
                self._send(self.session.run_one(job))

    def run_all(self) -> None:
        """Run the task, as it is now, on every runnable image; stored results are shown."""
        if not self.session.can_run():
            return
        decoder = self._mask_decoder()
        jobs = [self._job(item, True, decoder) for item in self.queue.runnable_items()]
        jobs = [job for job in jobs if job is not None]
        if jobs:
            self._send(self.session.run_all(jobs))

    def cancel(self) -> None:
        """Esc: stop the current generation within one token, and the rest of a batch."""
        self.session.cancel()
        self.status.show_batch(self.session.batch)

    def _send(self, job: Job | None) -> None:
        if job is not None:
            self.engine.run(job)
        self.status.show_batch(self.session.batch)
        self._update_run_state()

    def _running(self, job_id: int) -> Job | None:
        if self._closing:  # what arrives after Close is stored already; nothing to show
            return None
        job = self.session.running
        return job if job is not None and job.job_id == job_id else None

    def _on_job_started(self, job_id: int) -> None:
        if job := self._running(job_id):
            self.display.started(job, follow=self.session.batch is not None)

    def _on_token(self, job_id: int, text: str) -> None:
        if self._running(job_id):
            self.display.token(text)

    def _on_object(self, job_id: int, obj) -> None:
        if self._running(job_id):
            self.display.found(obj)

    def _on_job_ended(self, outcome: JobOutcome) -> None:
        if job := self._running(outcome.job_id):
            self.display.ended(job, outcome, follow=self.session.batch is not None)
            self._send(self.session.job_ended(outcome))
            self._prefetch()

    def _on_current_changed(self, item: QueueItem | None) -> None:
        if self.session.running is None:  # a running job's image stays on screen
            self.display.show_item(item)
            self._prefetch()
        self._update_run_state()

    def _prefetch(self) -> None:
        """While idle, encode the selected image and the next ones ahead of Run."""
        if self.session.model is None or self.session.busy or self._closing:
            return
        current = self.queue.current()
        paths = [i.path for i in self.queue.runnable_items()]
        self.engine.prefetch(prefetch_order(paths, current.path if current else None))

    # --- other actions -----------------------------------------------------------------

    def paste(self) -> None:
        """Ctrl+V: text into the focused text field, otherwise an image into the queue."""
        focus = QApplication.focusWidget()
        if isinstance(focus, QLineEdit | QPlainTextEdit | QTextEdit) and not focus.isReadOnly():
            focus.paste()
        else:
            self.queue.paste_clipboard()

    # --- persistence and shutdown ------------------------------------------------------

    def _save_settings(self) -> None:
        self.task_panel.save_settings(self.settings)
        self.settings = remember_window(self, self.settings)
        try:
            self.settings_store.save(self.settings)
        except Exception as exc:  # a settings write failure must not block closing
            self.notices.show_notice(failure_text(exc, "saving the settings"), error=True)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop the work in progress and close once the worker has let go of the model.

        A load cannot be interrupted inside llama.cpp: the window then says it is
        finishing and closes by itself when the worker is done; it never kills the thread.
        """
        if not self.engine.thread.isRunning():
            self.queue.shutdown()
            event.accept()
            return
        if not self._closing:
            self._closing = True
            self.session.cancel()
            self._save_settings()
            self.engine.request_stop()
        if self.engine.thread.wait(300):
            self.queue.shutdown()
            event.accept()
            return
        event.ignore()
        self.status.show_message("Finishing… PaliDesk closes when the model has loaded.")
        self.setEnabled(False)

    def _on_engine_stopped(self) -> None:
        if self._closing:
            self.close()
