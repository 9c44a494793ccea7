"""Models: the catalog with a fit badge per quantization for this machine, the installed
models, and prepare / import / remove with live progress; and the mask decoder that
Segment needs for masks (downloaded with the first model, or got/imported by its own
buttons)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.hardware import HardwareReport, detect, format_gb
from app.model_files.hf_cache import find_cached_checkpoint, repo_id_of_snapshot
from app.models.catalog import CATALOG, CatalogEntry
from app.models.disk_space import format_size
from app.models.fit_choice import FitChoice, choose, fit_badge
from app.models.installed import InstalledModels
from app.models.mask_decoder import decoder_problem, import_decoder, masks_weights_path
from app.models.measured_speed import describe_speed, speeds_here
from app.models.prepare import PrepareRequest
from app.models.recommend import recommend
from app.models.unfinished import Unfinished, clean_unfinished, unfinished_work
from app.progress import ProgressEvent
from app.ui.failures import failure_text
from app.ui.mask_decoder_worker import MaskDecoderThread
from app.ui.prepare_worker import PrepareThread

BADGE_QUANTS = ("F16", "Q8_0", "Q4_K_M")
_BADGE_COLORS = {"fits on GPU": "#2e7d32", "partial offload": "#ef6c00",
                 "CPU only": "#1565c0", "too large": "#c62828"}
_BADGE_MEANING = {"fits on GPU": "runs entirely on the GPU (fastest)",
                  "partial offload": "some layers on the GPU, the rest on the CPU",
                  "CPU only": "runs on the CPU, in the RAM PaliDesk may use",
                  "too large": "does not fit on this machine"}
KIND_LABELS = {"pt": "pt (for fine-tuning)", "mix": "mix (ready to use)",
               "ft": "fine-tuned"}


def colour_legend() -> str:
    """Rich text explaining each badge colour."""
    return "Colours: " + " · ".join(
        f'<span style="background:{_BADGE_COLORS[b]}; color:white">&nbsp;{b}&nbsp;</span> '
        f"{meaning}" for b, meaning in _BADGE_MEANING.items())


class ModelsDialog(QDialog):
    """``model_chosen(Path)`` is emitted when the user picks an installed model."""

    model_chosen = Signal(object)

    def __init__(self, models: InstalledModels, hardware: HardwareReport | None = None,
                 parent=None, *, use_hf_cache: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(980, 640)
        self.models = models
        self.use_hf_cache = use_hf_cache  # Settings › Downloads
        self.hardware = hardware or detect()
        self.preparer = PrepareThread(models, self)
        self.preparer.worker.progress.connect(self._on_progress)
        self.preparer.worker.finished.connect(self._on_prepared)
        self.preparer.worker.failed.connect(self._on_failed)
        self.decoder_thread = MaskDecoderThread(self)
        self.decoder_thread.worker.progress.connect(self._on_progress)
        self.decoder_thread.worker.finished.connect(self._on_decoder_installed)
        self.decoder_thread.worker.failed.connect(self._on_failed)
        self.busy = False
        self.downloading_model = False  # a catalog download (not a local import) is running

        self.hardware_label = QLabel(self.hardware.summary())
        advice = recommend(self.hardware)
        self.recommend_label = QLabel(
            advice.sentence() if advice is not None else
            "Not even the smallest PaliGemma 2 fits in the memory of this machine.")
        self.recommend_label.setWordWrap(True)
        self.recommend_label.setStyleSheet("font-weight: bold;")
        self.legend_label = QLabel(colour_legend())
        self.legend_label.setWordWrap(True)
        self.catalog = QTableWidget(0, 4 + len(BADGE_QUANTS))
        self.catalog.setHorizontalHeaderLabels(["Model", "Kind", "Image", "Download",
                                                *BADGE_QUANTS])
        self.catalog.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.catalog.verticalHeader().hide()
        self.catalog.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.choice_label = QLabel()
        self.choice_label.setWordWrap(True)
        self.prepare_button = QPushButton("Download and Prepare")
        self.import_button = QPushButton("Import Folder…")
        self.installed = QTableWidget(0, 4)
        self.installed.setHorizontalHeaderLabels(["Installed", "Image", "Types", "Size"])
        self.installed.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.installed.verticalHeader().hide()
        self.installed.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.use_button = QPushButton("Use This Model")
        self.remove_button = QPushButton("Remove…")
        # Unfinished downloads and preparations (NAME.partial folders) take real space.
        self.clean_button = QPushButton("Clean Up")
        self.disk_label = QLabel()
        self.progress = QProgressBar()
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.hide()  # only while something is being prepared
        self.close_buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.close_buttons.rejected.connect(self.reject)
        self.decoder_label = QLabel()
        self.decoder_label.setWordWrap(True)
        self.get_decoder_button = QPushButton("Download Mask Decoder")
        self.import_decoder_button = QPushButton("Import Mask Decoder…")

        layout = QVBoxLayout(self)
        layout.addWidget(self.hardware_label)
        layout.addWidget(self.recommend_label)
        layout.addWidget(self.catalog, 3)
        layout.addWidget(self.legend_label)
        layout.addWidget(self.choice_label)
        row = QHBoxLayout()
        row.addWidget(self.prepare_button)
        row.addWidget(self.import_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(self.installed, 2)
        row = QHBoxLayout()
        row.addWidget(self.use_button)
        row.addWidget(self.remove_button)
        row.addWidget(self.clean_button)
        row.addStretch(1)
        row.addWidget(self.disk_label)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.decoder_label, 1)
        row.addWidget(self.get_decoder_button)
        row.addWidget(self.import_decoder_button)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.close_buttons)

        self.catalog.itemSelectionChanged.connect(self._show_choice)
        self.prepare_button.clicked.connect(self.prepare_selected)
        self.import_button.clicked.connect(self.import_folder)
        self.use_button.clicked.connect(self.use_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.clean_button.clicked.connect(self.clean_up)
        self.cancel_button.clicked.connect(self.cancel)
        self.get_decoder_button.clicked.connect(self.download_decoder)
        self.import_decoder_button.clicked.connect(self.import_decoder_file)
        self._fill_catalog()
        self.refresh_installed()
        self.refresh_decoder()

    # --- catalog -----------------------------------------------------------------------

    def _fill_catalog(self) -> None:
        self.catalog.setRowCount(len(CATALOG))
        for row, entry in enumerate(CATALOG):
            cells = [entry.name, KIND_LABELS.get(entry.kind, entry.kind), f"{entry.image_size} px",
                     format_gb(entry.download_bytes())]
            for column, text in enumerate(cells):
                self.catalog.setItem(row, column, QTableWidgetItem(text))
            for offset, quant in enumerate(BADGE_QUANTS):
                badge = fit_badge(entry, quant, self.hardware)
                item = QTableWidgetItem(f"{badge} · {format_gb(entry.quant_file_bytes(quant))}")
                item.setForeground(Qt.GlobalColor.white)
                item.setBackground(QColor(_BADGE_COLORS[badge]))
                self.catalog.setItem(row, 4 + offset, item)
        self.catalog.resizeColumnsToContents()

    def selected_entry(self) -> CatalogEntry | None:
        rows = {i.row() for i in self.catalog.selectedItems()}
        return CATALOG[min(rows)] if rows else None

    def _show_choice(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            self.choice_label.clear()
            return
        choice = choose(entry, self.hardware)
        licence = (f" Downloading needs a Hugging Face account that accepted the licence at "
                   f"{entry.licence_url}." if entry.gated else "")
        description = entry.description.rstrip(". ") + "."
        if find_cached_checkpoint(entry.repo_id) is not None:
            licence = " It is already in your Hugging Face cache: nothing to download."
        speed = self._speed_here(entry, choice)
        self.choice_label.setText(f"{description} {choice.sentence}{speed}{licence}")

    def _speed_here(self, entry: CatalogEntry, choice: FitChoice) -> str:
        """Expected decode speed: measured if this model is installed and was tested."""
        folder = self.models.folder_for(entry.name)
        measured = speeds_here(folder) if folder.is_dir() else {}
        if choice.quant in measured and describe_speed(measured[choice.quant]):
            return f" Measured: {choice.quant} {describe_speed(measured[choice.quant])}."
        figure = choice.speeds.get(choice.quant) if choice.device == "cpu" else None
        if figure is not None and "tokens/s" not in choice.sentence:  # not said twice
            return f" Expected speed here: {figure.label()} ({choice.quant})."
        if choice.device in ("gpu", "partial"):
            return " Speed on the GPU is not estimated; Tools › Test Speed measures it."
        return ""

    # --- installed ---------------------------------------------------------------------

    def refresh_installed(self) -> None:
        installed = self.models.list()
        self.installed.setRowCount(len(installed))
        for row, model in enumerate(installed):
            for column, text in enumerate([model.name, f"{model.manifest.image_size} px",
                                           ", ".join(model.text_types),
                                           format_size(model.size_bytes)]):
                self.installed.setItem(row, column, QTableWidgetItem(text))
        self.installed.resizeColumnsToContents()
        leftovers = unfinished_work(self.models)  # with their files in the HF cache
        waste = sum(leftover.size_bytes for leftover in leftovers)
        unfinished = (f" · {len(leftovers)} unfinished ({format_size(waste)})"
                      if leftovers else "")
        self.disk_label.setText(f"{format_size(self.models.disk_use())} used in "
                                f"{self.models.models_dir}{unfinished}")
        self.clean_button.setEnabled(bool(leftovers) and not self.busy)
        self.clean_button.setToolTip("\n".join(
            f"{leftover.name}: {format_size(leftover.size_bytes)}" for leftover in leftovers))

    def selected_installed(self) -> str | None:
        rows = {i.row() for i in self.installed.selectedItems()}
        if not rows:
            return None
        return self.installed.item(min(rows), 0).text()

    def use_selected(self) -> None:
        name = self.selected_installed()
        if name is not None:
            self.model_chosen.emit(self.models.folder_for(name))
            self.accept()

    def remove_selected(self) -> None:
        name = self.selected_installed()
        if name is None or not self.confirm_remove(name):
            return
        try:
            self.models.remove(name)
        except Exception as exc:
            self.status.setText(failure_text(exc, f"removing {name}"))
        self.refresh_installed()

    def clean_up(self) -> None:
        """Delete every unfinished download or preparation, after asking."""
        leftovers = unfinished_work(self.models)
        if not leftovers or self.busy or not self.confirm_clean_up(leftovers):
            return
        try:
            freed = clean_unfinished(self.models)[2]
        except Exception as exc:
            self.status.setText(failure_text(exc, "cleaning up unfinished downloads"))
        else:
            self.status.setText(f"Deleted {len(leftovers)} unfinished download(s); "
                                f"{format_size(freed)} freed.")
        self.refresh_installed()

    def confirm_clean_up(self, leftovers: list[Unfinished]) -> bool:
        names = ", ".join(f"{leftover.name} ({format_size(leftover.size_bytes)})"
                          for leftover in leftovers)
        answer = QMessageBox.question(
            self, "Clean up", f"Delete the unfinished work for {names}? Preparing these "
            "models again will start over.")
        return answer == QMessageBox.StandardButton.Yes

    def confirm_remove(self, name: str) -> bool:
        answer = QMessageBox.question(self, "Remove model",
                                      f"Delete {name} and its files from this computer?")
        return answer == QMessageBox.StandardButton.Yes

    # --- mask decoder ------------------------------------------------------------------

    def refresh_decoder(self) -> None:
        """Say whether Segment can draw masks, and offer the buttons when it cannot."""
        problem = decoder_problem(self.models.models_dir)
        if problem is None:
            self.decoder_label.setText(
                f"Mask decoder installed ({masks_weights_path(self.models.models_dir)}): "
                "Segment draws masks.")
        else:
            self.decoder_label.setText(
                f"{problem} Without it, Segment shows boxes only. It is big_vision's "
                "vae-oid.npz (a few megabytes).")
        self.get_decoder_button.setVisible(problem is not None)
        self._set_buttons()

    def download_decoder(self) -> None:
        if self.busy:
            return
        self.busy = True
        self._set_buttons()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText("Downloading the mask decoder…")
        self.decoder_thread.start_requested.emit(self.models.models_dir)

    def import_decoder_file(self) -> None:
        if self.busy:
            return
        chosen = self.ask_decoder_file()
        if chosen is None:
            return
        try:
            import_decoder(self.models.models_dir, chosen)
        except Exception as exc:
            self.status.setText(failure_text(exc, "importing the mask decoder"))
        else:
            self.status.setText(f"Installed the mask decoder from {chosen.name}.")
        self.refresh_decoder()

    def ask_decoder_file(self) -> Path | None:
        chosen, _ = QFileDialog.getOpenFileName(
            self, "Import the mask decoder (vae-oid.npz)", "", "NumPy archives (*.npz)")
        return Path(chosen) if chosen else None

    def _on_decoder_installed(self, path: Path) -> None:
        self.busy = False
        self.progress.hide()
        self.status.setText(f"Mask decoder installed: {path}")
        self.refresh_decoder()

    def cancel(self) -> None:
        self.preparer.cancel()
        self.decoder_thread.cancel()

    # --- preparing ---------------------------------------------------------------------

    def prepare_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None or self.busy:
            return
        choice = choose(entry, self.hardware)
        quant = choice.quant if choice.device != "none" else "Q4_K_M"
        self.start(PrepareRequest(entry.name, (quant,), repo_id=entry.repo_id,
                                  use_hf_cache=self.use_hf_cache))
        self.downloading_model = True

    def import_folder(self) -> None:
        folder = self.ask_directory()
        if folder is None or self.busy:
            return
        cached_repo = repo_id_of_snapshot(folder)  # a Hugging Face cache snapshot
        name = cached_repo.split("/")[-1] if cached_repo else folder.name
        self.start(PrepareRequest(name, ("Q4_K_M",), local_path=folder))

    def ask_directory(self) -> Path | None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Import a Hugging Face checkpoint or a PaliDesk model folder")
        return Path(chosen) if chosen else None

    def start(self, request: PrepareRequest) -> None:
        self.downloading_model = False
        self.busy = True
        self._set_buttons()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(f"Preparing {request.name}…")
        self.preparer.start_requested.emit(request)

    def _on_progress(self, event: ProgressEvent) -> None:
        if event.total > 1:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(event.fraction * 1000))
        else:
            self.progress.setRange(0, 0)
        self.status.setText(f"{event.stage}: {event.message}")

    def _on_prepared(self, folder: Path) -> None:
        self.busy = False
        self._set_buttons()
        self.progress.hide()
        self.status.setText(f"Installed {folder.name}.")
        self.refresh_installed()
        # A model downloaded from the catalog brings Segment's mask decoder along (once);
        # a local import does not go online.
        if self.downloading_model and decoder_problem(self.models.models_dir) is not None:
            self.download_decoder()
        self.downloading_model = False

    def _on_failed(self, message: str) -> None:
        self.busy = False
        self._set_buttons()
        self.progress.hide()
        self.status.setText(message)
        self.refresh_installed()
        self.refresh_decoder()

    def _set_buttons(self) -> None:
        for button in (self.prepare_button, self.import_button, self.remove_button,
                       self.get_decoder_button, self.import_decoder_button):
            button.setEnabled(not self.busy)
        self.clean_button.setEnabled(not self.busy and bool(unfinished_work(self.models)))
        self.cancel_button.setEnabled(self.busy)
        self.cancel_button.setVisible(self.busy)

    def done(self, result: int) -> None:
        self.preparer.stop()
        self.decoder_thread.stop()
        super().done(result)
