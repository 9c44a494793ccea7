"""The History dialog: search past results, reopen one, delete some or all."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import HistoryError
from app.export.record_selection import SPATIAL_TASKS, clean_output_text
from app.history.history_record import HistoryRecord
from app.history.history_store import HistoryStore
from app.history.record_words import local_time, record_state
from app.tasks.prompts import TaskKind
from app.ui.export_actions import EXPORT_KINDS, describe_summary, export_records

ERROR_STYLE = "color: #c62828;"
SHOWN_LIMIT = 500  # enough to browse; searching finds older ones
TASK_NAMES: dict[str, str] = {
    TaskKind.CAPTION.value: "Caption",
    TaskKind.OCR.value: "Read text",
    TaskKind.ASK.value: "Question answered",
    TaskKind.QUESTION.value: "Question generated",
    TaskKind.DETECT.value: "Detect",
    TaskKind.SEGMENT.value: "Segment",
    TaskKind.CUSTOM.value: "Custom prompt",
}
_COLUMNS = ("Time", "Image", "Task", "Model", "State", "Output")
__all__ = ["HistoryDialog", "local_time", "output_summary"]


def output_summary(record: HistoryRecord) -> str:
    """One line for the table: the objects found, or the output's first line."""
    if record.task in SPATIAL_TASKS:
        labels = ", ".join(dict.fromkeys(obj.label for obj in record.objects))
        count = len(record.objects)
        noun = "object" if count == 1 else "objects"
        return f"{count} {noun}: {labels}" if count else "nothing found"
    lines = clean_output_text(record.text).splitlines()
    return lines[0] if lines else ""


class HistoryDialog(QDialog):
    """Lists ``store``'s results; emits ``record_opened`` with the one to show again."""

    record_opened = Signal(object)  # HistoryRecord

    def __init__(self, store: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("History")
        self.resize(900, 500)
        self._store = store
        self._records: list[HistoryRecord] = []
        self._build()
        self.refresh()

    # --- public interface ------------------------------------------------------------

    def refresh(self) -> None:
        """Read the records matching the search and filter again."""
        task = self.task_combo.currentData()
        try:
            records = self._store.recent(
                SHOWN_LIMIT, task=task, search=self.search_edit.text().strip() or None
            )
        except HistoryError as error:
            self._show_error(str(error))
            records = []
        else:
            self.status_label.clear()
            self.status_label.setStyleSheet("")
            if len(records) == SHOWN_LIMIT:
                self.status_label.setText(
                    f"Showing the newest {SHOWN_LIMIT} results; search to find older ones."
                )
        self._fill(records)

    def records(self) -> list[HistoryRecord]:
        """The records the table lists, newest first."""
        return list(self._records)

    def selected_records(self) -> list[HistoryRecord]:
        """The records whose rows are selected, in table order."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self._records[row] for row in rows]

    def reopen_selected(self) -> None:
        """Emit ``record_opened`` for the selected record and close the dialog."""
        chosen = self.selected_records()
        if len(chosen) == 1:
            self.record_opened.emit(chosen[0])
            self.accept()

    def export(self, kind: str) -> None:
        """Export the selection, or every listed record when nothing is selected (so the
        task filter and the search choose what is written)."""
        records = self.selected_records() or self.records()
        summary = export_records(self, records, kind)
        if summary is not None:
            self.status_label.setText(describe_summary(summary))
            self.status_label.setStyleSheet("")

    def delete_selected(self) -> None:
        """Remove the selected records from the history."""
        try:
            for record in self.selected_records():
                if record.id is not None:
                    self._store.delete(record.id)
        except HistoryError as error:
            self._show_error(str(error))
            return
        self.refresh()

    def clear_all(self) -> None:
        """Remove every record, after ``confirm_clear()`` agrees."""
        if not self.confirm_clear():
            return
        try:
            self._store.clear()
        except HistoryError as error:
            self._show_error(str(error))
            return
        self.refresh()

    def confirm_clear(self) -> bool:
        """Ask before clearing the whole history. Tests replace this."""
        answer = QMessageBox.question(
            self,
            "Clear history",
            "Delete every result in the history? Exported files are not affected. "
            "This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    # --- building --------------------------------------------------------------------

    def _build(self) -> None:
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search image names, prompts and answers")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(lambda _text: self.refresh())
        self.task_combo = QComboBox()
        self.task_combo.addItem("All tasks", None)
        for value, name in TASK_NAMES.items():
            self.task_combo.addItem(name, value)
        self.task_combo.currentIndexChanged.connect(lambda _index: self.refresh())
        filters = QHBoxLayout()
        filters.addWidget(self.search_edit, 1)
        filters.addWidget(self.task_combo)

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        for column in range(len(_COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.cellDoubleClicked.connect(lambda _row, _column: self.reopen_selected())

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)

        self.export_button = QPushButton("Export")
        self.export_button.setToolTip("Export the selected results (all listed ones when "
                                      "none is selected)")
        export_menu = QMenu(self.export_button)
        for kind, label in EXPORT_KINDS:
            export_menu.addAction(label, lambda k=kind: self.export(k))
        self.export_button.setMenu(export_menu)
        self.reopen_button = QPushButton("Reopen")
        self.delete_button = QPushButton("Delete")
        self.clear_button = QPushButton("Clear all…")
        close_button = QPushButton("Close")
        self.reopen_button.clicked.connect(self.reopen_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button.clicked.connect(self.clear_all)
        close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        for button in (self.reopen_button, self.export_button, self.delete_button,
                       self.clear_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)

    # --- helpers ---------------------------------------------------------------------

    def _fill(self, records: list[HistoryRecord]) -> None:
        self._records = records
        self.table.setRowCount(0)
        self.table.setRowCount(len(records))
        for row, record in enumerate(records):
            model = f"{record.model} / {record.quantization}"
            cells = (
                local_time(record.created, seconds=True),
                Path(record.image_path).name,
                TASK_NAMES.get(record.task, record.task),
                model,
                record_state(record),
                output_summary(record),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(record.image_path if column == 1 else record.prompt)
                self.table.setItem(row, column, item)
        self._update_buttons()

    def _update_buttons(self) -> None:
        selected = len(self.selected_records())
        self.reopen_button.setEnabled(selected == 1)
        self.delete_button.setEnabled(selected > 0)

    def _show_error(self, message: str) -> None:
        self.status_label.setText(message)
        self.status_label.setStyleSheet(ERROR_STYLE)
