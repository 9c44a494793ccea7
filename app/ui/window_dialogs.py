"""The main window's dialogs and what follows them: settings, models, history, export,
choosing a model folder. A mixin, so the window file keeps to showing the session."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from app.history import HistoryRecord
from app.models.installed import InstalledModels
from app.session.model_choice import kept_until_loaded, start_folder
from app.session.session import needs_reload
from app.settings import Settings
from app.ui.export_actions import export_images
from app.ui.history_dialog import HistoryDialog
from app.ui.models_dialog import ModelsDialog
from app.ui.settings_dialog import SettingsDialog


class WindowDialogsMixin:
    """For ``MainWindow``: uses its settings, session, queue, view, display and notices."""

    def choose_model_folder(self) -> None:
        chosen = self.ask_model_folder(start_folder(self.settings))
        if chosen:
            self.load_model(Path(chosen))

    def ask_model_folder(self, start: Path) -> str:
        """The folder dialog ("" when cancelled); a method of its own so tests replace it."""
        return QFileDialog.getExistingDirectory(self, "Choose a PaliDesk model folder",
                                                str(start))

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, new: Settings) -> None:
        """Adopt ``new``; swap the model in place when its folder, type or load options
        changed (the queue and the results stay)."""
        old = self.settings
        # A new model folder or quantization is saved only once it has loaded
        # (``_on_model_loaded``): a failed choice must not be what every start retries.
        self.settings = kept_until_loaded(old, new)
        self._save_settings()
        if new.model_folder and (needs_reload(old, new) or self.session.model is None):
            self.load_model(Path(new.model_folder), new.quantization)

    def show_models(self) -> None:
        dialog = ModelsDialog(InstalledModels(Path(self.settings.models_dir)), parent=self,
                              use_hf_cache=self.settings.download_to_hf_cache)
        dialog.model_chosen.connect(self.load_model)
        dialog.exec()

    def show_history(self) -> None:
        dialog = HistoryDialog(self.history, self)
        dialog.record_opened.connect(self.open_record)
        dialog.exec()

    def open_record(self, record: HistoryRecord) -> None:
        """Show exactly this History result: its image is queued (if it still exists and
        is not queued yet) and selected, and the result is listed and shown even where a
        newer one of the same question would hide it."""
        path = Path(record.image_path)
        self.queue.select_path(path)
        self.view.show_image(path if path.exists() else None)
        self.display.show_results(path, record.image_sha256, record.id)

    def export(self, kind: str) -> None:
        """Export this session's results: every stored result of the queued images."""
        request = self.task_panel.request()
        only_task = self.actions_.export_only_task.isChecked() and request is not None
        done = export_images(self, self.results, [(i.sha256, i.path) for i in self.queue.items()],
                             kind, task=request.kind.value if only_task else None,
                             include_cancelled=self.actions_.export_cancelled.isChecked())
        if done:
            self.notices.show_notice(done)

