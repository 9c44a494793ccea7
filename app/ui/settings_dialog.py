"""The Settings dialog: model folder, quantization, load options and sampling."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.errors import ModelFolderError, PaliDeskError
from app.hardware import HardwareReport, detect
from app.model_files.model_folder import ModelFolder
from app.models.fit_choice import FitChoice, choose, fit_badge
from app.models.measured_speed import describe_speed, speeds_here
from app.session.quant_note import quant_note
from app.settings.settings import Settings
from app.settings.validation import MAX_NEW_TOKENS

log = logging.getLogger(__name__)

AUTOMATIC_QUANT = "auto"
AUTOMATIC_QUANT_LABEL = "Automatic (best installed)"
ERROR_STYLE = "color: #c62828;"
MAX_GPU_LAYERS = 999  # more than any PaliGemma 2 has; llama.cpp caps it at the real count
DEFAULT_TEMPERATURE = 0.7  # offered when sampling is first switched on


def format_size(size: int) -> str:
    """``1_600_000_000`` -> "1.6 GB"; small files in MB or kB (decimal units, as sold)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def gpu_offload_available() -> bool | None:
    """Whether this llama.cpp build can use a GPU; None when it cannot be told."""
    # Imported late: loading llama.cpp should not be the price of opening a dialog, and a
    # broken build must not keep the user from fixing their settings.
    try:
        from app.engine.llama_library import supports_gpu_offload

        return supports_gpu_offload()
    except Exception:  # the dialog still opens; the log says why the answer is unknown
        log.warning("could not tell whether this llama.cpp build can use a GPU", exc_info=True)
        return None


def describe_folder(path: str) -> tuple[str, list[tuple[str, int]], bool]:
    """A sentence about the model folder at ``path``, its installed text types (best
    first) with their sizes in bytes, and whether it is a usable model folder."""
    if not path.strip():
        return "No model folder chosen.", [], False
    try:
        folder = ModelFolder(Path(path))
    except ModelFolderError as error:
        return str(error), [], False
    manifest = folder.manifest
    types = folder.text_types()
    sizes = {entry.type.upper(): entry.size for entry in manifest.files if entry.role == "text"}
    installed = [(name, sizes.get(name, 0)) for name in types]
    name = str(manifest.source.get("name") or folder.path.name)
    layers = manifest.text.get("layers")
    facts = [name, f"{manifest.image_size}×{manifest.image_size} px images"]
    if isinstance(layers, int):
        facts.append(f"{layers} text layers")
    if not types:
        facts.append("no text model file installed; convert or quantize the model again")
        return " · ".join(facts), [], False
    facts.append("installed: " + ", ".join(types))
    return " · ".join(facts), installed, True


class SettingsDialog(QDialog):
    """Edits a copy of ``settings``; ``result_settings()`` returns it after OK."""

    def __init__(self, settings: Settings, parent: QWidget | None = None,
                 hardware: HardwareReport | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        self._hardware = hardware
        self._wanted_quant = settings.quantization
        self._fit: tuple[ModelFolder, FitChoice] | None = None  # folder, automatic choice
        layout = QVBoxLayout(self)
        layout.addWidget(self._model_section())
        layout.addWidget(self._load_section())
        layout.addWidget(self._generation_section())
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._load(settings)

    # --- public interface ------------------------------------------------------------

    def result_settings(self) -> Settings:
        """A new Settings holding the edits; the one passed in is left untouched."""
        result = copy.deepcopy(self._settings)
        folder = self.folder_edit.text().strip()
        result.model_folder = folder or None
        result.quantization = str(self.quant_combo.currentData() or AUTOMATIC_QUANT)
        result.gpu_layers = None if self.gpu_auto_check.isChecked() else self.gpu_spin.value()
        result.threads = None if self.threads_auto_check.isChecked() else self.threads_spin.value()
        result.max_new_tokens = self.max_tokens_spin.value()
        sampling = self.sampling_combo.currentIndex() == 1
        result.temperature = self.temperature_spin.value() if sampling else 0.0
        result.top_k = self.top_k_spin.value()
        result.top_p = self.top_p_spin.value()
        result.seed = self.seed_spin.value()
        result.download_to_hf_cache = self.hf_cache_check.isChecked()
        return result

    def set_fit_note(self, text: str | None) -> None:
        """Show (or with None hide) the note under the quantization: how the selected
        one runs here, e.g. "Q5_K_M fits in 7.6 GB free of 8 GB on RTX 3070 …"."""
        self.fit_label.setText(text or "")
        self.fit_label.setVisible(bool(text))

    def set_automatic_label(self, text: str) -> None:
        """Rename the automatic choice, e.g. "Automatic (Q4_K_M fits this GPU)"."""
        self.quant_combo.setItemText(0, text)

    # --- sections --------------------------------------------------------------------

    def _model_section(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("A folder made by “palidesk convert”")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_button)
        form.addRow("Model folder:", row)
        self.folder_info = QLabel()
        self.folder_info.setWordWrap(True)
        self.folder_info.setTextFormat(Qt.TextFormat.PlainText)
        form.addRow("", self.folder_info)

        self.quant_combo = QComboBox()
        self._filling_quants = False
        self.quant_combo.currentIndexChanged.connect(lambda _index: self._on_quant_chosen())
        # What the automatic choice would be on this machine, and why (the fit estimate).
        self.fit_label = QLabel()
        self.fit_label.setWordWrap(True)
        self.fit_label.hide()
        form.addRow("Quantization:", self.quant_combo)
        form.addRow("", self.fit_label)
        self.folder_edit.textChanged.connect(self._refresh_folder)
        # Shared with transformers and `hf download`, so one copy serves every tool.
        self.hf_cache_check = QCheckBox("Download new models into the Hugging Face cache")
        self.hf_cache_check.setToolTip(
            "Checkpoints are kept in the Hugging Face cache (HF_HOME), where transformers "
            "and other tools find them too. Off: each download is kept in PaliDesk's "
            "models folder only until the model is prepared.")
        form.addRow("Downloads:", self.hf_cache_check)
        return box

    def _load_section(self) -> QGroupBox:
        box = QGroupBox("Loading")
        form = QFormLayout(box)
        self.gpu_auto_check = QCheckBox("Automatic")
        self.gpu_spin = QSpinBox()
        self.gpu_spin.setRange(0, MAX_GPU_LAYERS)
        self.gpu_spin.setSpecialValueText("0 (CPU only)")
        self.gpu_auto_check.toggled.connect(lambda auto: self.gpu_spin.setEnabled(not auto))
        form.addRow("GPU layers:", _row(self.gpu_auto_check, self.gpu_spin))
        self.gpu_note = QLabel(
            "This build of llama.cpp runs on the CPU only, so GPU layers have no effect."
        )
        self.gpu_note.setWordWrap(True)
        self.gpu_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.gpu_note.setVisible(gpu_offload_available() is False)
        form.addRow("", self.gpu_note)

        self.threads_auto_check = QCheckBox("Automatic")
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(1, 512)
        self.threads_auto_check.toggled.connect(
            lambda auto: self.threads_spin.setEnabled(not auto)
        )
        form.addRow("CPU threads:", _row(self.threads_auto_check, self.threads_spin))
        return box

    def _generation_section(self) -> QGroupBox:
        box = QGroupBox("Generation")
        form = QFormLayout(box)
        self.max_tokens_spin = QSpinBox()
        self.max_tokens_spin.setRange(1, MAX_NEW_TOKENS)
        form.addRow("Max new tokens:", self.max_tokens_spin)
        self.sampling_combo = QComboBox()
        self.sampling_combo.addItems(
            ["Greedy (always the most likely token)", "Sample (varied answers)"]
        )
        self.sampling_combo.currentIndexChanged.connect(self._show_sampling)
        form.addRow("Decoding:", self.sampling_combo)
        self.temperature_spin = _double_spin(0.01, 2.0, 0.05)
        self.top_k_spin = QSpinBox()
        self.top_k_spin.setRange(0, 1000)
        self.top_k_spin.setSpecialValueText("Off")
        self.top_p_spin = _double_spin(0.01, 1.0, 0.05)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self._sampling_rows = (
            ("Temperature:", self.temperature_spin),
            ("Top-k:", self.top_k_spin),
            ("Top-p:", self.top_p_spin),
            ("Seed:", self.seed_spin),
        )
        for label, widget in self._sampling_rows:
            form.addRow(label, widget)
        return box

    # --- behaviour -------------------------------------------------------------------

    def _load(self, settings: Settings) -> None:
        self.folder_edit.setText(settings.model_folder or "")
        self._refresh_folder()
        self.gpu_auto_check.setChecked(settings.gpu_layers is None)
        self.gpu_spin.setValue(MAX_GPU_LAYERS if settings.gpu_layers is None
                               else settings.gpu_layers)
        self.gpu_spin.setEnabled(settings.gpu_layers is not None)
        self.threads_auto_check.setChecked(settings.threads is None)
        self.threads_spin.setValue(settings.threads or os.cpu_count() or 1)
        self.threads_spin.setEnabled(settings.threads is not None)
        self.max_tokens_spin.setValue(settings.max_new_tokens)
        self.hf_cache_check.setChecked(settings.download_to_hf_cache)
        sampling = settings.temperature > 0
        self.temperature_spin.setValue(settings.temperature if sampling else DEFAULT_TEMPERATURE)
        self.top_k_spin.setValue(settings.top_k)
        self.top_p_spin.setValue(settings.top_p)
        self.seed_spin.setValue(settings.seed)
        self.sampling_combo.setCurrentIndex(1 if sampling else 0)
        self._show_sampling()

    def _browse(self) -> None:
        chosen = self.ask_folder(self.folder_edit.text().strip() or self._settings.models_dir)
        if chosen:
            self.folder_edit.setText(chosen)

    def ask_folder(self, start: str) -> str:
        """Ask for a model folder; "" when cancelled. Tests replace this."""
        return QFileDialog.getExistingDirectory(self, "Choose a PaliDesk model folder", start)

    def _refresh_folder(self) -> None:
        description, installed, usable = describe_folder(self.folder_edit.text())
        self.folder_info.setText(description)
        # No folder yet is a state, not a mistake: only a wrong folder shows in red.
        wrong = not usable and bool(self.folder_edit.text().strip())
        self.folder_info.setStyleSheet(ERROR_STYLE if wrong else "")
        automatic = self.quant_combo.itemText(0) if self.quant_combo.count() else ""
        self._filling_quants = True  # a fallback while refilling is not the user's pick
        self.quant_combo.clear()
        self.quant_combo.addItem(automatic or AUTOMATIC_QUANT_LABEL, AUTOMATIC_QUANT)
        for name, size in installed:
            label = f"{name} — {format_size(size)}" if size else name
            self.quant_combo.addItem(label, name)
        index = self.quant_combo.findData(self._wanted_quant.upper())
        self.quant_combo.setCurrentIndex(max(index, 0))
        self._filling_quants = False
        self._update_fit(usable)

    def _update_fit(self, usable: bool) -> None:
        """Name the automatic choice and badge each type for this machine's memory."""
        self._fit = None
        if not usable:
            self.set_automatic_label(AUTOMATIC_QUANT_LABEL)
            self.set_fit_note(None)
            return
        if self._hardware is None:
            self._hardware = detect()
        try:
            folder = ModelFolder(Path(self.folder_edit.text().strip()))
            choice = choose(folder, self._hardware, available_quants=folder.text_types())
            measured = speeds_here(folder.path)  # from a speed test or palidesk eval
            for i in range(1, self.quant_combo.count()):
                quant = str(self.quant_combo.itemData(i))
                badge = fit_badge(folder, quant, self._hardware)
                figures = describe_speed(measured[quant]) if quant in measured else ""
                text = f"{self.quant_combo.itemText(i)} · {badge}"
                self.quant_combo.setItemText(i, f"{text} · {figures}" if figures else text)
        except PaliDeskError:
            self.set_fit_note(None)
            return
        self.set_automatic_label(f"Automatic ({choice.quant})" if choice.device != "none"
                                 else AUTOMATIC_QUANT_LABEL)
        self._fit = (folder, choice)
        self._describe_selected()

    def _describe_selected(self) -> None:
        """The note describes the quantization selected, not always the automatic one."""
        if self._fit is None or self._hardware is None:
            return
        folder, choice = self._fit
        quant = str(self.quant_combo.currentData() or AUTOMATIC_QUANT)
        try:
            self.set_fit_note(quant_note(folder, quant, self._hardware, choice))
        except PaliDeskError:
            self.set_fit_note(None)

    def _on_quant_chosen(self) -> None:
        # Remembered across folders: the pick comes back when a folder has that type.
        if not self._filling_quants:
            self._wanted_quant = str(self.quant_combo.currentData() or AUTOMATIC_QUANT)
            self._describe_selected()

    def _show_sampling(self) -> None:
        sampling = self.sampling_combo.currentIndex() == 1
        for _label, widget in self._sampling_rows:
            widget.setEnabled(sampling)


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    row.addStretch(1)
    return row


def _double_spin(low: float, high: float, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(2)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    return spin
