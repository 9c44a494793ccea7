"""Tools › Test speed on this machine: each quantization on a built-in image (about a
minute each for the 3B on a CPU); the figures are kept with the model and shown in
Settings and the Models dialog."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import PaliDeskError
from app.model_files.model_folder import ModelFolder
from app.models.measured_speed import QuantSpeed, speeds_here
from app.progress import ProgressEvent
from app.ui.background_task import BackgroundTask, TaskDialog, time_left

# Units on a second line: the eight columns then fit the dialog's default width.
HEADERS = ("Quantization", "Tokens/s", "First token\n(s)", "Cached image\n(s)", "Load\n(s)",
           "Peak RAM\n(GB)", "Peak VRAM\n(GB)", "GPU\nlayers")


class SpeedTestDialog(TaskDialog):
    def __init__(self, model_folder: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Test Speed on This Machine")
        self.resize(720, 380)
        self.model_folder = model_folder
        self.task: BackgroundTask | None = None
        self.explain = QLabel(
            "Captions a built-in image with each chosen quantization: load time, time to the "
            "first token (new image, then the same image again), decode speed and peak "
            "memory. The model the window uses stays loaded meanwhile. Figures are kept "
            "with the model folder.")
        self.explain.setWordWrap(True)
        self.quant_boxes: dict[str, QCheckBox] = {}
        quant_row = QHBoxLayout()
        installed: list[str] = []
        if model_folder is not None:
            try:
                installed = ModelFolder(model_folder).text_types()
            except PaliDeskError as exc:
                self.explain.setText(str(exc))
        else:
            self.explain.setText("No model folder is chosen: choose one in Settings first.")
        for quant in installed:
            box = QCheckBox(quant)
            box.setChecked(True)
            self.quant_boxes[quant] = box
            quant_row.addWidget(box)
        quant_row.addStretch(1)
        self.start_button = QPushButton("Start")
        self.start_button.setEnabled(bool(installed))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)

        controls = QHBoxLayout()
        controls.addLayout(quant_row, 1)
        controls.addWidget(self.start_button)
        controls.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.explain)
        layout.addLayout(controls)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        if model_folder is not None:
            self.show_figures(speeds_here(model_folder))  # earlier measurements

    def start(self) -> None:
        if self.model_folder is None or (self.task is not None and self.task.running):
            return
        quants = [q for q, box in self.quant_boxes.items() if box.isChecked()]
        if not quants:
            self.status.setText("Choose at least one quantization.")
            return
        from app.evaluation.speed_test import run_speed_test

        folder = self.model_folder
        self.task = BackgroundTask(
            lambda progress, cancel: run_speed_test(folder, quants, progress=progress,
                                                    cancel=cancel),
            "PaliDesk speed test", self)
        self.task.progress.connect(self._on_progress)
        self.task.finished.connect(self._on_finished)
        self.task.failed.connect(self._on_failed)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, len(quants))
        self.progress.setValue(0)
        self.status.setStyleSheet("")
        self.status.setText("Starting…")
        self._started = time.monotonic()
        self.task.start()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _on_progress(self, event: ProgressEvent) -> None:
        self.progress.setValue(event.done)
        left = time_left(event.done, event.total, time.monotonic() - self._started)
        self.status.setText(f"{event.message} · {left}" if left else event.message)

    def _on_finished(self, results: dict[str, QuantSpeed]) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(f"Measured {len(results)} quantization(s); kept in "
                            f"{self.model_folder}/speed.json." if results else "Cancelled.")
        if self.model_folder is not None:
            # What was just measured, even where the folder could not keep it.
            self.show_figures({**speeds_here(self.model_folder), **results})

    def _on_failed(self, message: str) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setStyleSheet("color: #c62828;")
        self.status.setText(message)

    def show_figures(self, speeds: dict[str, QuantSpeed]) -> None:
        self.table.setRowCount(len(speeds))
        for row, (quant, s) in enumerate(speeds.items()):
            cells = (quant, _num(s.decode_tokens_per_s, "{:.1f}"), _num(s.first_token_s),
                     _num(s.first_token_cached_s), _num(s.load_s),
                     _num(s.peak_rss_bytes and s.peak_rss_bytes / 1e9),
                     _num(s.peak_vram_bytes and s.peak_vram_bytes / 1e9), str(s.gpu_layers))
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()


def _num(value: float | None, form: str = "{:.2f}") -> str:
    return "–" if value is None else form.format(value)
