"""The PaliDesk window: queue (left), image (centre), task and results (right).

Data flows one way: drop -> queue -> worker -> engine -> parser -> result -> view. The
window holds no model logic; it turns user actions into worker intents and renders what
comes back.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.build_info import gpu_build_advice
from app.engine.engine import EngineConfig
from app.engine.events import GenerationOptions
from app.errors import HistoryError
from app.history import HistoryRecord, HistoryStore, file_sha256
from app.models.installed import InstalledModels
from app.settings import Settings, SettingsStore
from app.tasks.task_runner import TaskResult
from app.ui.about_dialog import show_about
from app.ui.batch_progress import BatchProgress
from app.ui.engine_worker import EngineThread, Job, LoadedModel, LoadRequest
from app.ui.export_actions import EXPORT_KINDS, export_records
from app.ui.first_run_panel import FirstRunPanel
from app.ui.history_dialog import HistoryDialog
from app.ui.image_files import paths_from_mime
from app.ui.image_queue import ImageQueue, QueueItem
from app.ui.image_view import ImageView
from app.ui.models_dialog import ModelsDialog
from app.ui.notice_bar import NoticeBar
from app.ui.results_panel import ResultsPanel
from app.ui.settings_dialog import SettingsDialog
from app.ui.task_panel import TaskPanel


class MainWindow(QMainWindow):
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
        self.cache_dir = cache_dir
        self.engine = engine_thread or EngineThread(self)
        self.model: LoadedModel | None = None
        self.loading = False
        self._job_id = 0
        self._running: Job | None = None
        self._batch: list[QueueItem] = []
        self._batch_progress: BatchProgress | None = None
        # Finished results per queue item key (the newest), to reshow on selection.
        self.results: dict[str, TaskResult] = {}

        self._build_widgets()
        self._build_menus()
        self._connect()
        self.task_panel.load_settings(self.settings)
        self._restore_geometry()
        for warning in (gpu_build_advice(), loaded.warning, history.warning):
            if warning:
                self.notices.show_notice(warning)
        self._update_run_state()
        if self.settings.model_folder:
            self.load_model(Path(self.settings.model_folder))
        else:
            self.first_run.show()

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
        centre_layout.addWidget(self.notices)
        centre_layout.addWidget(self.first_run)
        centre_layout.addWidget(self.view, 1)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.task_panel)
        right.addWidget(self.results_panel)
        right.setStretchFactor(1, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.queue)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 640, 380])
        self.setCentralWidget(self.splitter)

        status = self.statusBar()
        self.model_label = QLabel("No model")
        self.device_label = QLabel("")
        self.batch_bar = QProgressBar()
        self.batch_bar.setMaximumWidth(220)
        self.batch_bar.hide()
        self.batch_label = QLabel("")
        status.addWidget(self.batch_label, 1)
        status.addPermanentWidget(self.batch_bar)
        status.addPermanentWidget(self.device_label)
        status.addPermanentWidget(self.model_label)
        self.resize(1280, 800)

    def _action(self, text: str, slot, shortcut: QKeySequence | str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even when the menu bar is hidden
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.add_files_action = self._action("Add Files…", self.queue.ask_add_files,
                                             QKeySequence.StandardKey.Open)
        file_menu.addAction(self.add_files_action)
        file_menu.addAction(self._action("Add Folder…", self.queue.ask_add_folder))
        file_menu.addAction(self._action("Paste Image", self.paste, QKeySequence.StandardKey.Paste))
        file_menu.addSeparator()
        file_menu.addAction(self._action("Models…", self.show_models, "Ctrl+M"))
        file_menu.addAction(self._action("Choose Model Folder…", self.choose_model_folder))
        export_menu = file_menu.addMenu("Export Results")
        for kind, label in EXPORT_KINDS:
            export_menu.addAction(self._action(label, lambda _=False, k=kind: self.export(k)))
        file_menu.addSeparator()
        file_menu.addAction(self._action("Quit", self.close, QKeySequence.StandardKey.Quit))

        run_menu = bar.addMenu("&Run")
        self.run_action = self._action("Run", self.run_current, "Ctrl+Return")
        self.run_all_action = self._action("Run All", self.run_all, "Ctrl+Shift+Return")
        self.cancel_action = self._action("Cancel", self.cancel, "Esc")
        for action in (self.run_action, self.run_all_action, self.cancel_action):
            run_menu.addAction(action)
        self._action("", self.run_current, "Ctrl+Enter")  # keypad Enter

        view_menu = bar.addMenu("&View")
        view_menu.addAction(self._action("History…", self.show_history, "Ctrl+H"))
        view_menu.addAction(self._action("Next Image", self.queue.select_next, "Alt+Down"))
        view_menu.addAction(self._action("Previous Image", self.queue.select_previous,
                                         "Alt+Up"))
        settings_menu = bar.addMenu("&Settings")
        settings_menu.addAction(self._action("Preferences…", self.show_settings,
                                             QKeySequence.StandardKey.Preferences))
        bar.addMenu("&Help").addAction(self._action("About PaliDesk", lambda: show_about(self)))

    def _connect(self) -> None:
        worker = self.engine.worker
        worker.model_loaded.connect(self._on_model_loaded)
        worker.model_failed.connect(self._on_model_failed)
        worker.token.connect(self._on_token)
        worker.object_found.connect(self._on_object)
        worker.job_finished.connect(self._on_job_finished)
        worker.job_failed.connect(self._on_job_failed)
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
        return EngineConfig(
            gpu_layers=-1 if s.gpu_layers is None else s.gpu_layers,
            threads=s.threads,
            max_new_tokens_limit=max(512, s.max_new_tokens),
        )

    def load_model(self, folder: Path) -> None:
        """Load (or swap to) ``folder`` with the settings' quantization, via the worker."""
        quant = None if self.settings.quantization in ("auto", "") else self.settings.quantization
        self.loading = True
        self.model_label.setText(f"Loading {folder.name}…")
        self._update_run_state()
        self.engine.load_requested.emit(LoadRequest(
            folder, quant, self.engine_config(),
            auto_gpu_layers=self.settings.gpu_layers is None))

    def _on_model_loaded(self, model: LoadedModel) -> None:
        self.loading = False
        self.model = model
        self.first_run.hide()
        self.model_label.setText(f"{model.name} · {model.quant} · {model.image_size} px")
        self.model_label.setToolTip(model.choice or "")
        self.device_label.setText(model.device)
        if model.choice and self.settings.quantization in ("auto", ""):
            self.statusBar().showMessage(model.choice, 15_000)
        self.task_panel.set_checkpoint_kind(model.checkpoint_kind)
        self._update_run_state()

    def _on_model_failed(self, message: str) -> None:
        self.loading = False
        self.model = None
        self.model_label.setText("No model")
        self.device_label.setText("")
        self.first_run.show()
        self.notices.show_notice(message, error=True)
        self._update_run_state()

    def choose_model_folder(self) -> None:
        folder = self._ask_model_folder()
        if folder is not None:
            self.use_model_folder(folder)

    def _ask_model_folder(self) -> Path | None:
        start = self.settings.model_folder or self.settings.models_dir
        chosen = QFileDialog.getExistingDirectory(self, "Choose a PaliDesk model folder", start)
        return Path(chosen) if chosen else None

    # --- running -----------------------------------------------------------------------

    def _update_run_state(self) -> None:
        busy = self._running is not None
        reason = ""
        if self.loading:
            reason = "The model is loading."
        elif self.model is None:
            reason = "Load a model first (Settings or File › Choose Model Folder)."
        elif not self.queue.runnable_items():
            reason = "Add an image first."
        elif self.task_panel.request() is None:
            reason = "Complete the task's fields first."
        ready = not reason and not busy
        self.task_panel.set_busy(busy)
        self.task_panel.set_run_enabled(ready, reason)
        self.run_action.setEnabled(ready)
        self.run_all_action.setEnabled(ready)
        self.cancel_action.setEnabled(busy)

    def generation_options(self) -> GenerationOptions:
        s = self.settings
        return GenerationOptions(max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                                 top_k=s.top_k, top_p=s.top_p, seed=s.seed)

    def run_current(self) -> None:
        item = self.queue.current()
        if item is None or item.status == "error" or self._running is not None:
            return
        self._batch = []
        self._batch_progress = None
        self._start_job(item)

    def run_all(self) -> None:
        if self._running is not None or self.model is None:
            return
        self._batch = list(self.queue.runnable_items())
        self._batch_progress = BatchProgress(total=len(self._batch))
        self.batch_bar.setRange(0, len(self._batch))
        self.batch_bar.setValue(0)
        self.batch_bar.show()
        self._next_in_batch()

    def _next_in_batch(self) -> None:
        progress = self._batch_progress
        while self._batch and progress is not None:
            item = self._batch.pop(0)
            if self._already_done(item):
                progress.skip()
                self.queue.set_status(item.key, "done")
                continue
            self.queue.set_current(item.key)
            self._start_job(item)
            self._show_batch_progress()
            return
        self._finish_batch()

    def _already_done(self, item: QueueItem) -> bool:
        """Whether history holds a finished result for this image, task, prompt and model."""
        request = self.task_panel.request()
        if request is None or self.model is None:
            return False
        try:
            digest = file_sha256(item.path)
            found = self.history.find(digest, request.kind.value, self.task_panel.prompt() or "",
                                      self.model.name, self.model.quant)
        except (OSError, HistoryError):
            return False
        return found is not None

    def _show_batch_progress(self) -> None:
        if self._batch_progress is None:
            return
        self.batch_bar.setValue(self._batch_progress.done)
        self.batch_label.setText("Run all: " + self._batch_progress.summary())

    def _finish_batch(self) -> None:
        if self._batch_progress is not None:
            self._show_batch_progress()
            self.batch_label.setText("Run all finished: " + self._batch_progress.summary())
        self._batch = []
        self._batch_progress = None
        self.batch_bar.hide()
        self._update_run_state()

    def _start_job(self, item: QueueItem) -> None:
        request = self.task_panel.request()
        if request is None:
            return
        self._job_id += 1
        job = Job(self._job_id, item.path, request, self.generation_options(), item.key)
        self._running = job
        if self._batch_progress is not None:
            self._batch_progress.job_started()
        self.queue.set_status(item.key, "running")
        self.view.show_image(item.path)
        self.view.clear_overlays()
        self.results_panel.start(item.name, self.task_panel.prompt() or "")
        self._update_run_state()
        self.engine.run_requested.emit(job)

    def cancel(self) -> None:
        """Esc: stop the current generation within one token, and the rest of a batch."""
        self._batch = []
        if self._running is not None:
            self.engine.cancel()

    def _is_current_job(self, job_id: int) -> bool:
        return self._running is not None and self._running.job_id == job_id

    def _on_token(self, job_id: int, text: str) -> None:
        if self._is_current_job(job_id):
            self.results_panel.append_text(text)

    def _on_object(self, job_id: int, obj) -> None:
        if self._is_current_job(job_id):
            self.view.add_object(obj)
            self.results_panel.add_object(obj)

    def _on_job_finished(self, job_id: int, result: TaskResult) -> None:
        if not self._is_current_job(job_id):
            return
        key = self._running.queue_key
        self._running = None
        self.results[key] = result
        self.results_panel.finish(result)
        self.view.set_objects(result.objects)
        cancelled = result.result.stop_reason == "cancelled"
        self.queue.set_status(key, "ready" if cancelled else "done")
        if not cancelled:
            self._record(key, result)
        if self._batch_progress is not None:
            self._batch_progress.job_ended(ok=not cancelled)
        self._continue_batch()

    def _on_job_failed(self, job_id: int, message: str) -> None:
        if not self._is_current_job(job_id):
            return
        key = self._running.queue_key
        self._running = None
        self.results_panel.show_error(message)
        self.queue.set_status(key, "error", message)
        if self._batch_progress is not None:
            self._batch_progress.job_ended(ok=False)
        self._continue_batch()

    def _continue_batch(self) -> None:
        if self._batch_progress is not None:
            self._next_in_batch()
        else:
            self._update_run_state()

    def _record(self, key: str, result: TaskResult) -> None:
        item = self.queue.item(key)
        if item is None or self.model is None:
            return
        try:
            self.history.add(HistoryRecord.from_task_result(
                result, item.path, self.model.name, self.model.quant))
        except HistoryError as exc:
            self.notices.show_notice(str(exc), error=True)

    def _on_current_changed(self, item: QueueItem | None) -> None:
        if self._running is not None:
            return  # the running job's image stays on screen
        self.view.show_image(item.path if item is not None else None)
        self.view.clear_overlays()
        result = self.results.get(item.key) if item is not None else None
        if result is not None:
            self.view.set_objects(result.objects)
            self.results_panel.finish(result)
        else:
            self.results_panel.clear()
        self._update_run_state()

    # --- other actions -----------------------------------------------------------------

    def paste(self) -> None:
        """Ctrl+V: text into the focused text field, otherwise an image into the queue."""
        focus = QApplication.focusWidget()
        if isinstance(focus, QLineEdit | QPlainTextEdit | QTextEdit) and not focus.isReadOnly():
            focus.paste()
            return
        image = QApplication.clipboard().image()
        if image.isNull():
            urls = QApplication.clipboard().mimeData().urls()
            paths = [Path(u.toLocalFile()) for u in urls if u.isLocalFile()]
            if paths:
                self.queue.add_paths(paths)
            else:
                self.notices.show_notice("The clipboard holds no image.")
            return
        self.queue.add_pasted(image)

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if not dialog.exec():
            return
        self.apply_settings(dialog.result_settings())

    def apply_settings(self, new: Settings) -> None:
        """Adopt ``new``; swap the model in place when its folder, type or load options
        changed (the queue and the results stay)."""
        old = self.settings
        self.settings = new
        self._save_settings()
        reload_keys = ("model_folder", "quantization", "gpu_layers", "threads")
        changed = any(getattr(old, k) != getattr(new, k) for k in reload_keys)
        if new.model_folder and (changed or self.model is None):
            self.load_model(Path(new.model_folder))

    def show_models(self) -> None:
        dialog = ModelsDialog(InstalledModels(Path(self.settings.models_dir)), parent=self)
        dialog.model_chosen.connect(self.use_model_folder)
        dialog.exec()

    def use_model_folder(self, folder: Path) -> None:
        self.settings.model_folder = str(folder)
        self._save_settings()
        self.load_model(Path(folder))

    def show_history(self) -> None:
        dialog = HistoryDialog(self.history, self)
        dialog.record_opened.connect(self.open_record)
        dialog.exec()

    def open_record(self, record: HistoryRecord) -> None:
        path = Path(record.image_path)
        if path.exists():
            self.queue.add_paths([path])
        self.view.show_image(path if path.exists() else None)
        self.view.set_objects(record.objects)
        self.results_panel.show_record(record)

    def export(self, kind: str) -> None:
        records = self._current_records()
        if not records:
            self.notices.show_notice("There are no results to export yet.")
            return
        summary = export_records(self, records, kind)
        if summary is not None:
            self.notices.show_notice(
                f"Exported {len(summary.written)} file(s)"
                + (f", skipped {len(summary.skipped)}." if summary.skipped else "."))

    def _current_records(self) -> list[HistoryRecord]:
        """This session's finished results, as history records (what "Export" writes)."""
        records = []
        for key, result in self.results.items():
            item = self.queue.item(key)
            if item is None or result is None or self.model is None:
                continue
            records.append(HistoryRecord.from_task_result(
                result, item.path, self.model.name, self.model.quant))
        return records

    # --- drag and drop -----------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if paths_from_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.queue.add_paths(paths)

    # --- persistence and shutdown ------------------------------------------------------

    def _restore_geometry(self) -> None:
        if self.settings.window_geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(self.settings.window_geometry)))
        if self.settings.window_state:
            self.restoreState(QByteArray(base64.b64decode(self.settings.window_state)))

    def _save_settings(self) -> None:
        self.task_panel.save_settings(self.settings)
        self.settings = dataclasses.replace(
            self.settings,
            window_geometry=base64.b64encode(bytes(self.saveGeometry().data())).decode(),
            window_state=base64.b64encode(bytes(self.saveState().data())).decode(),
        )
        try:
            self.settings_store.save(self.settings)
        except Exception as exc:  # a settings write failure must not block closing
            self.notices.show_notice(str(exc), error=True)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel a running generation, join the engine thread, keep every result."""
        self._batch = []
        self._save_settings()
        self.engine.stop()
        self.queue.shutdown()
        event.accept()
