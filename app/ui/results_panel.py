"""The answer as it streams in (text with a blinking cursor, detections, timings, stop
reason), and the list of every stored result of the selected image to choose from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.history.history_record import HistoryRecord
from app.history.record_words import local_time, record_state, same_bytes_note
from app.session.stream_pacing import shows_same
from app.tasks.object_masks import mask_area
from app.tasks.output_text import without_end_marker
from app.tasks.parsing import DetectedObject
from app.ui.label_colors import color_for_label

if TYPE_CHECKING:  # importing task_runner at run time would load llama.cpp
    from app.tasks.task_runner import TaskResult

CURSOR_GLYPH = "▍"
BLINK_MS = 500
ERROR_STYLE = "color: #c62828;"
_NO_LIMIT = 16_777_215  # Qt's QWIDGETSIZE_MAX
# The output as shown: without the trailing ``<eos>`` the model ends with (the one cleaner).
display_text = without_end_marker


def format_timings(timings: Mapping[str, object], tokens: int) -> str:
    """One line such as "Image 1.92 s · first token 5.81 s · 7.1 tokens/s · 24 tokens".

    Takes ``Timings.to_dict()`` (what history records keep); missing values are left out.
    """
    parts: list[str] = []
    encode = _number(timings.get("image_encode_s"))
    if timings.get("image_cached"):
        parts.append("Image cached")
    elif encode is not None:
        parts.append(f"Image {encode:.2f} s")
    first = _number(timings.get("first_token_s"))
    if first is not None and tokens:
        parts.append(f"first token {first:.2f} s")
    speed = _number(timings.get("decode_tokens_per_s"))
    if speed is not None and speed > 0:
        parts.append(f"{speed:.1f} tokens/s")
    if timings or tokens:
        parts.append(f"{tokens} token" + ("" if tokens == 1 else "s"))
    return " · ".join(parts)


def _number(value: object) -> float | None:
    # History JSON may hold anything; a bool is not a duration even though it is an int.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def stop_reason_text(stop_reason: str, tokens: int) -> str:
    """A sentence for why generation stopped; "" for a normal end."""
    if stop_reason == "cancelled":
        noun = "token" if tokens == 1 else "tokens"
        return f"Cancelled — kept the {tokens} {noun} generated so far."
    if stop_reason == "max_tokens":
        return (
            f"Stopped at the limit of {tokens} new tokens; raise “Max new tokens” in "
            "Settings for longer answers."
        )
    return ""


def no_objects_text(task: str, objects: int, stop_reason: str) -> str:
    """Says so when a detect/segment run produced no complete object."""
    if task not in ("detect", "segment") or objects or stop_reason == "cancelled":
        return ""
    return "No objects were found in the output."


def record_title(record: HistoryRecord) -> str:
    """One line of the results list: task, prompt, model, time and whether it is partial."""
    # HH:MM:SS (the full date is in the tooltip): older runs of one prompt differ by it.
    parts = [record.prompt or record.task, record.quantization,
             local_time(record.created, seconds=True)[-8:]]
    if record_state(record) != "finished":
        parts.append(record_state(record))
    return " · ".join(parts)


class ResultsPanel(QWidget):
    """Shows one task's output; the window feeds it, it never runs anything itself.

    ``record_shown`` is emitted when a stored result is shown (picked in the list), so the
    window can draw its boxes.
    """

    _COLUMNS = ("", "Label", "Box (x0, y0, x1, y1)", "Mask area")
    record_shown = Signal(object)  # HistoryRecord
    show_older_changed = Signal(bool)  # the user asked for (or hid) older results

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._tail = ""  # the cursor glyph currently at the end of the document, if any
        self._objects: list[DetectedObject] = []
        self._records: list[HistoryRecord] = []
        self._image_path: Path | None = None  # the selected image the list belongs to
        self._shown_id: int | None = None
        self.cursor_timer = QTimer(self)
        self.cursor_timer.setInterval(BLINK_MS)
        self.cursor_timer.timeout.connect(self._blink)
        self._build()
        self.clear()

    # --- public interface ------------------------------------------------------------

    def start(self, image_name: str, prompt: str) -> None:
        """Begin showing a new run on ``image_name`` with ``prompt``."""
        self.clear()
        self._set_header(image_name, prompt)
        self._set_tail(CURSOR_GLYPH)
        self.cursor_timer.start()

    def append_text(self, text: str) -> None:
        """Add streamed text; the cursor stays visible while tokens arrive."""
        if not text:
            return
        self._text += text
        cursor = self._end_cursor(len(self._tail))
        cursor.insertText(text + (CURSOR_GLYPH if self.cursor_timer.isActive() else ""))
        self._tail = CURSOR_GLYPH if self.cursor_timer.isActive() else ""
        if self.cursor_timer.isActive():
            self.cursor_timer.start()  # restart the blink so typing never looks paused
        self.text_edit.ensureCursorVisible()
        self._update_buttons()

    def add_object(self, obj: DetectedObject) -> None:
        """Add a detection as soon as it is complete."""
        self._objects.append(obj)
        self._add_row(obj)
        self._update_buttons()

    def finish(self, result: TaskResult) -> None:
        """Show the finished result: final text, every object, timings and stop reason."""
        self._stop_streaming()
        event = result.result
        self._set_header(Path(result.image).name, result.prompt)
        self._show_final(
            event.text,
            result.objects,
            format_timings(event.timings.to_dict(), len(event.tokens)),
            stop_reason_text(event.stop_reason, len(event.tokens)),
        )

    def show_record(self, record: HistoryRecord) -> None:
        """Show a stored result (its list entry is selected when it has one)."""
        self._stop_streaming()
        # The selected file's name, even when the answer was made for a byte-identical one.
        image = self._image_path or Path(record.image_path)
        self._set_header(f"{image.name} — {record.model} {record.quantization}", record.prompt)
        note = same_bytes_note(record, image)
        self.source_label.setText(note)
        self.source_label.setVisible(bool(note))
        status = stop_reason_text(record.stop_reason, len(record.tokens)) or no_objects_text(
            record.task, len(record.objects), record.stop_reason)
        self._show_final(
            record.text,
            record.objects,
            format_timings(record.timings, len(record.tokens)),
            status,
        )
        self._shown_id = record.id
        self._select_in_list(record.id)
        self.record_shown.emit(record)

    def shown_id(self) -> int | None:
        """The id of the stored result on show (None while a run streams or when empty)."""
        return self._shown_id

    def set_records(self, records: list[HistoryRecord], select_id: int | None = None,
                    image_path: Path | None = None, older: int = 0) -> None:
        """List the stored results of the image at ``image_path`` (newest first) and show
        ``select_id``, or the newest; with none, the panel is cleared. ``older``: how many
        older results of the same questions are left out (offered on request)."""
        self._records = list(records)
        self._image_path = image_path
        self.result_list.blockSignals(True)
        try:
            self.result_list.clear()
            for record in self._records:
                row = QListWidgetItem(record_title(record))
                row.setData(Qt.ItemDataRole.UserRole, record.id)
                row.setToolTip(f"{record.task}: {record.prompt}\n{record.model} "
                               f"{record.quantization}\n{record.created}")
                self.result_list.addItem(row)
        finally:
            self.result_list.blockSignals(False)
        showing_older = self.older_check.isChecked()
        listed = len(self._records) > 1 or older > 0 or showing_older
        self.result_list.setVisible(listed)
        self.list_label.setVisible(listed)
        count = len(self._records)
        self.list_label.setText(f"{count} result{'' if count == 1 else 's'} for this image")
        self.older_check.setVisible(older > 0 or showing_older)
        self.older_check.setText("Show older results" if showing_older else
                                 f"Show {older} older result{'' if older == 1 else 's'}")
        chosen = next((r for r in self._records if r.id == select_id), None)
        if chosen is None and self._records:
            chosen = self._records[0]
        if chosen is None:
            self.clear()
        else:
            self.show_record(chosen)

    def records(self) -> list[HistoryRecord]:
        """The results listed, newest first."""
        return list(self._records)

    def listed_titles(self) -> list[str]:
        """The list's lines, as shown."""
        return [self.result_list.item(i).text() for i in range(self.result_list.count())]

    def show_note(self, message: str) -> None:
        """Stop streaming and show ``message`` (not an error), e.g. a cancel before any token."""
        self._stop_streaming()
        self.status_label.setText(message)
        self.status_label.setStyleSheet("")
        self.status_label.show()

    def show_error(self, message: str) -> None:
        """Stop streaming and show ``message`` in red; the text so far stays."""
        self._stop_streaming()
        self.status_label.setText(message)
        self.status_label.setStyleSheet(ERROR_STYLE)
        self.status_label.show()

    def clear(self) -> None:
        """Show nothing."""
        self._stop_streaming()
        self._shown_id = None
        self._text = ""
        self._tail = ""
        self._objects = []
        self.text_edit.clear()
        self.table.setRowCount(0)
        self.table.setMaximumHeight(_NO_LIMIT)
        self.table.hide()
        self._set_header("", "")
        self.source_label.hide()
        self.timings_label.clear()
        self.timings_label.hide()
        self.status_label.clear()
        self.status_label.hide()
        self._update_buttons()

    def text(self) -> str:
        """The text shown, without the cursor glyph."""
        return self._text

    def objects(self) -> list[DetectedObject]:
        """The detections shown."""
        return list(self._objects)

    def object_rows(self) -> int:
        """How many detections the table lists."""
        return self.table.rowCount()

    def copy_text(self) -> None:
        """Put the text on the clipboard."""
        QGuiApplication.clipboard().setText(self._text)

    def copy_detections(self) -> None:
        """Put the detections on the clipboard as a JSON list of ``to_dict()``."""
        data = [obj.to_dict() for obj in self._objects]
        QGuiApplication.clipboard().setText(json.dumps(data, indent=2, ensure_ascii=False))

    # --- building --------------------------------------------------------------------

    def _build(self) -> None:
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.image_label = QLabel()
        self.image_label.setTextFormat(Qt.TextFormat.PlainText)
        bold = self.image_label.font()
        bold.setBold(True)
        self.image_label.setFont(bold)
        self.source_label = QLabel()  # "Answer found for identical bytes: …"
        self.source_label.setWordWrap(True)
        self.source_label.setTextFormat(Qt.TextFormat.PlainText)
        self.source_label.hide()
        self.prompt_label = QLabel()
        self.prompt_label.setTextFormat(Qt.TextFormat.PlainText)
        self.prompt_label.setFont(fixed)
        self.prompt_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.list_label = QLabel()
        # Older results of the same question (hidden by the newest) on request.
        self.older_check = QCheckBox()
        self.older_check.hide()
        self.older_check.toggled.connect(self.show_older_changed)
        list_row = QHBoxLayout()
        list_row.addWidget(self.list_label, 1)
        list_row.addWidget(self.older_check)
        self.result_list = QListWidget()
        self.result_list.setMaximumHeight(110)
        self.result_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.result_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.result_list.currentItemChanged.connect(self._on_list_choice)
        self.list_label.hide()
        self.result_list.hide()

        self.text_edit = QPlainTextEdit()
        self.text_edit.setReadOnly(True)
        self.text_edit.setPlaceholderText("The answer appears here.")

        self.table = QTableWidget(0, len(self._COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self._COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        # Compact rows (the style's default is ~30 px): more objects in view at 1280×800.
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)

        self.timings_label = QLabel()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)

        self.copy_text_button = QPushButton("Copy text")
        self.copy_detections_button = QPushButton("Copy detections")
        self.copy_text_button.clicked.connect(self.copy_text)
        self.copy_detections_button.clicked.connect(self.copy_detections)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_text_button)
        buttons.addWidget(self.copy_detections_button)

        layout = QVBoxLayout(self)
        layout.addLayout(list_row)
        layout.addWidget(self.result_list)
        layout.addWidget(self.image_label)
        layout.addWidget(self.source_label)
        layout.addWidget(self.prompt_label)
        layout.addWidget(self.text_edit, 2)
        layout.addWidget(self.table, 1)
        self._layout = layout
        layout.addWidget(self.timings_label)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)

    # --- helpers ---------------------------------------------------------------------

    def _set_header(self, image_name: str, prompt: str) -> None:
        self.image_label.setText(image_name)
        self.prompt_label.setText(prompt)
        self.prompt_label.setVisible(bool(prompt))

    def _show_final(
        self, text: str, objects: list[DetectedObject], timings: str, status: str
    ) -> None:
        shown = display_text(text)
        # The end of a streamed answer shows what is already there: laying a long text
        # out again and rebuilding hundreds of rows would freeze the window for nothing.
        if shown != self._text or self._tail:
            self._text = shown
            self._tail = ""
            self.text_edit.setPlainText(self._text)
        if shows_same(self._objects, objects):
            self._objects = list(objects)  # the stored ones, for Copy detections
        else:
            self._objects = []
            self.table.setRowCount(0)
            for obj in objects:
                self._objects.append(obj)
                self._add_row(obj)
        self.table.setVisible(bool(objects))
        self._give_room_to_objects(bool(objects))
        self.timings_label.setText(timings)
        self.timings_label.setVisible(bool(timings))
        self.status_label.setText(status)
        self.status_label.setStyleSheet("")
        self.status_label.setVisible(bool(status))
        self._update_buttons()

    def _give_room_to_objects(self, objects: bool) -> None:
        """With detections the table gets most of the height (their text is location
        tokens), so a segment result lists more than two rows at 1280×800."""
        self._layout.setStretchFactor(self.text_edit, 1 if objects else 2)
        self._layout.setStretchFactor(self.table, 3 if objects else 1)
        # No taller than its rows: with a few objects the text keeps the rest.
        rows = self.table.rowCount() * self.table.verticalHeader().defaultSectionSize()
        frame = 2 * self.table.frameWidth()
        self.table.setMaximumHeight(rows + self.table.horizontalHeader().sizeHint().height()
                                    + frame + 2 if objects else _NO_LIMIT)

    def _add_row(self, obj: DetectedObject) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        swatch = QTableWidgetItem()
        # A QColor as decoration is painted as a small filled square: the box's colour.
        swatch.setData(Qt.ItemDataRole.DecorationRole, color_for_label(obj.label))
        self.table.setItem(row, 0, swatch)
        self.table.setItem(row, 1, QTableWidgetItem(obj.label))
        box = ", ".join(str(round(value)) for value in obj.box)
        self.table.setItem(row, 2, QTableWidgetItem(box))
        area = mask_area(obj)
        self.table.setItem(row, 3, QTableWidgetItem("" if area is None else f"{area:,} px"))
        # The mask column only when there are masks (segment with the decoder installed);
        # decided row by row, as rows stream in, not by looking through them all again.
        self.table.setColumnHidden(3, (row == 0 or self.table.isColumnHidden(3))
                                   and obj.mask is None)
        self.table.show()

    def _on_list_choice(self, row: QListWidgetItem | None, _previous=None) -> None:
        if row is None:
            return
        record_id = row.data(Qt.ItemDataRole.UserRole)
        record = next((r for r in self._records if r.id == record_id), None)
        if record is not None:
            self.show_record(record)

    def _select_in_list(self, record_id: int | None) -> None:
        for index in range(self.result_list.count()):
            row = self.result_list.item(index)
            if row.data(Qt.ItemDataRole.UserRole) == record_id:
                self.result_list.blockSignals(True)
                self.result_list.setCurrentItem(row)
                self.result_list.blockSignals(False)
                return

    def _end_cursor(self, select_back: int) -> QTextCursor:
        """A cursor at the end of the document, selecting the last ``select_back`` chars."""
        cursor = QTextCursor(self.text_edit.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if select_back:
            cursor.movePosition(
                QTextCursor.MoveOperation.PreviousCharacter,
                QTextCursor.MoveMode.KeepAnchor,
                select_back,
            )
        return cursor

    def _set_tail(self, tail: str) -> None:
        # Only the glyph is touched, so a selection in the text above survives the blink.
        cursor = self._end_cursor(len(self._tail))
        cursor.insertText(tail)
        self._tail = tail

    def _blink(self) -> None:
        self._set_tail("" if self._tail else CURSOR_GLYPH)

    def _stop_streaming(self) -> None:
        self.cursor_timer.stop()
        if self._tail:
            self._set_tail("")

    def _update_buttons(self) -> None:
        self.copy_text_button.setEnabled(bool(self._text))
        self.copy_detections_button.setEnabled(bool(self._objects))
