"""Tools › Evaluate…: run a task with several quantizations on your images, score them
against labels if given, compare them, and open the HTML report."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import PaliDeskError
from app.evaluation.scored_tasks import SCORED_TASKS
from app.model_files.model_folder import ModelFolder
from app.progress import CancelFlag, ProgressCallback, ProgressEvent
from app.ui.background_task import BackgroundTask, TaskDialog, time_left

MEMORY_NOTE = ("Each quantization is loaded beside the model the window uses, one at a "
               "time: the machine needs memory for both while this runs.")


class EvalProgress:
    """Words for an evaluation's progress: each image is answered once per quantization,
    so "image 2 of 3 · quantization 1 of 3" (the events count answers, not images)."""

    def __init__(self, quants: int) -> None:
        self.quants = max(quants, 1)
        self._starts: dict[str, int] = {}  # quantization -> answers done before it

    def text(self, event: ProgressEvent, elapsed: float) -> str:
        images = max(event.total // self.quants, 1)
        # Quantizations run one after another, each over every image.
        start = self._starts.setdefault(event.stage, len(self._starts) * images)
        parts = [event.message, f"image {event.done - start} of {images}"]
        if self.quants > 1:
            parts.append(f"quantization {len(self._starts)} of {self.quants}")
        left = time_left(event.done, event.total, elapsed)
        return " · ".join(parts + ([left] if left else []))


class EvaluateDialog(TaskDialog):
    """Choose images (and labels), task and quantizations; Run; see the results table."""

    def __init__(self, model_folder: Path | None, output_root: Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Evaluate")
        self.resize(760, 560)
        self.model_folder = model_folder
        self.output_root = output_root
        self.task: BackgroundTask | None = None
        self.report_path: Path | None = None
        self.report: dict[str, Any] | None = None
        self._started = 0.0
        self._progress = EvalProgress(1)

        self.model_label = QLabel(str(model_folder) if model_folder else
                                  "No model folder is chosen: choose one in Settings first.")
        self.images_edit = QLineEdit()
        self.images_edit.setPlaceholderText("folder of images (optional with labels)")
        self.truth_edit = QLineEdit()
        self.truth_edit.setPlaceholderText("COCO .json, YOLO folder or .jsonl (optional)")
        self.task_combo = QComboBox()
        self.task_combo.addItems(SCORED_TASKS)
        self.classes_edit = QLineEdit()
        self.classes_edit.setPlaceholderText("cat; dog (default: the labels' categories)")
        self.question_edit = QLineEdit()
        self.question_edit.setPlaceholderText("ask: the question, if the labels have none")
        self.limit_spin = QSpinBox()
        self.limit_spin.setRange(0, 100_000)
        self.limit_spin.setSpecialValueText("all")
        self.quant_boxes: dict[str, QCheckBox] = {}
        quant_row = QHBoxLayout()
        for quant in self._installed():
            box = QCheckBox(quant)
            box.setChecked(True)
            self.quant_boxes[quant] = box
            quant_row.addWidget(box)
        quant_row.addStretch(1)

        form = QFormLayout()
        form.addRow("Model:", self.model_label)
        form.addRow("Images:", _with_button(self.images_edit, "Browse…", self._browse_images))
        truth_row = _with_button(self.truth_edit, "File…", self._browse_truth_file)
        folder_button = QPushButton("Folder…")
        folder_button.clicked.connect(self._browse_truth_folder)
        truth_row.addWidget(folder_button)
        form.addRow("Labels:", truth_row)
        form.addRow("Task:", self.task_combo)
        form.addRow("Objects:", self.classes_edit)
        form.addRow("Question:", self.question_edit)
        form.addRow("Quantizations:", quant_row)
        form.addRow("Images at most:", self.limit_spin)

        self.note = QLabel(MEMORY_NOTE)
        self.note.setWordWrap(True)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.results = QTableWidget(0, 0)
        self.results.verticalHeader().hide()
        self.results.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.open_button = QPushButton("Open Report")
        self.open_button.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)

        controls = QHBoxLayout()
        for widget in (self.run_button, self.cancel_button, self.open_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addLayout(controls)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        layout.addWidget(buttons)

        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self.open_report)
        self.task_combo.currentTextChanged.connect(self._show_task_fields)
        self._show_task_fields(self.task_combo.currentText())
        self.run_button.setEnabled(bool(self.quant_boxes))

    def _installed(self) -> list[str]:
        if self.model_folder is None:
            return []
        try:
            return ModelFolder(self.model_folder).text_types()
        except PaliDeskError as exc:
            self.model_label.setText(str(exc))
            return []

    def _show_task_fields(self, task: str) -> None:
        self.classes_edit.setEnabled(task in ("detect", "segment"))
        self.question_edit.setEnabled(task == "ask")

    def _browse_images(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image Folder")
        if path:
            self.images_edit.setText(path)

    def _browse_truth_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Labels", "", "Labels (*.json *.jsonl)")
        if path:
            self.truth_edit.setText(path)

    def _browse_truth_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "YOLO Folder")
        if path:
            self.truth_edit.setText(path)

    # --- running -----------------------------------------------------------------------

    def chosen_quants(self) -> list[str]:
        return [q for q, box in self.quant_boxes.items() if box.isChecked()]

    def start(self) -> None:
        """Check the choices and start the evaluation in the background."""
        if (self.task is not None and self.task.running) or self.model_folder is None:
            return
        quants = self.chosen_quants()
        if not quants:
            self._show_error("Choose at least one quantization.")
            return
        truth = Path(self.truth_edit.text().strip()) if self.truth_edit.text().strip() else None
        images = (Path(self.images_edit.text().strip()) if self.images_edit.text().strip()
                  else None)
        task = self.task_combo.currentText()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = self.output_root / f"{self.model_folder.name}-{task}-{stamp}"
        job_args = dict(model_dir=self.model_folder, quants=quants, task=task, truth=truth,
                        images=images, limit=self.limit_spin.value() or None, out=out,
                        classes=self.classes_edit.text(), question=self.question_edit.text())
        self.task = BackgroundTask(lambda progress, cancel: evaluate(progress, cancel,
                                                                     **job_args),
                                   "PaliDesk evaluate", self)
        self.task.progress.connect(self._on_progress)
        self.task.finished.connect(self._on_finished)
        self.task.failed.connect(self._on_failed)
        self.results.setRowCount(0)
        self.open_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setStyleSheet("")
        self.status.setText("Starting…")
        self.progress.setRange(0, 0)
        self._started = time.monotonic()
        self._progress = EvalProgress(len(quants))
        self.task.start()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Stopping after the current answer; what is done is kept…")

    def _on_progress(self, event: ProgressEvent) -> None:
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(event.done)
        self.status.setText(self._progress.text(event, time.monotonic() - self._started))

    def _on_finished(self, result: tuple[dict[str, Any], Path]) -> None:
        self.report, self.report_path = result
        self._idle()
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        stopped = " (stopped early: the figures cover what was done)" if self.report[
            "interrupted"] else ""
        self.status.setText(f"Done{stopped}. Report: {self.report_path}")
        self.fill_results(self.report)
        self.open_button.setEnabled(True)

    def _on_failed(self, message: str) -> None:
        self._idle()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self._show_error(message)

    def _show_error(self, message: str) -> None:
        self.status.setStyleSheet("color: #c62828;")
        self.status.setText(message)

    def _idle(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def fill_results(self, report: dict[str, Any]) -> None:
        """One row per quantization: its metrics, agreement and speed."""
        metric_names: list[str] = []
        for entry in report["quants"].values():
            metric_names += [m for m in (entry.get("metrics") or {}) if m not in metric_names]
        headers = ["Quantization", "Images", *metric_names,
                   f"Agrees with {report['reference']}", "Tokens/s", "First token (s)",
                   "Peak RAM (GB)"]
        self.results.setColumnCount(len(headers))
        self.results.setHorizontalHeaderLabels(headers)
        self.results.setRowCount(len(report["quants"]))
        for row, (quant, entry) in enumerate(report["quants"].items()):
            speed = entry.get("speed") or {}
            agreement = (entry.get("agreement") or {}).get("share")
            metrics = entry.get("metrics") or {}
            cells = [quant, str(entry["images_done"]),
                     *[_number(metrics.get(m)) for m in metric_names],
                     "–" if agreement is None else f"{agreement * 100:.0f} %",
                     _number(speed.get("decode_tokens_per_s"), "{:.1f}"),
                     _number(speed.get("first_token_s"), "{:.2f}"),
                     _number(speed.get("peak_rss_bytes") and speed["peak_rss_bytes"] / 1e9,
                             "{:.2f}")]
            for column, text in enumerate(cells):
                self.results.setItem(row, column, QTableWidgetItem(text))
        self.results.resizeColumnsToContents()

    def open_report(self) -> None:
        if self.report_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report_path)))


def evaluate(progress: ProgressCallback, cancel: CancelFlag, *, model_dir: Path,
             quants: list[str], task: str, truth: Path | None, images: Path | None,
             limit: int | None, out: Path, classes: str, question: str
             ) -> tuple[dict[str, Any], Path]:
    """The job the dialog runs: plan, run, write report.json and report.html."""
    from app.evaluation.eval_images import collect_images
    from app.evaluation.eval_run import EvalPlan, plan_quants, run_eval
    from app.evaluation.report_html import write_html
    from app.evaluation.score import load_truth

    ordered, reference = plan_quants(ModelFolder(model_dir), quants)
    loaded = load_truth(task, truth) if truth is not None else None
    chosen = collect_images(task, loaded, truth, images, limit, classes, question)
    plan = EvalPlan(model_dir, task, ordered, reference, chosen, out, loaded, truth)
    report = run_eval(plan, progress, cancel)
    return report, write_html(report, out)


def _number(value: float | None, form: str = "{:.3f}") -> str:
    return "–" if value is None else form.format(value)


def _with_button(edit: QLineEdit, text: str, slot: Any) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    button = QPushButton(text)
    button.clicked.connect(slot)
    row.addWidget(button)
    return row
