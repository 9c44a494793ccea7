"""The task picker: which job to run, its inputs, the exact prompt it sends, and Run."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.errors import TaskError
from app.settings.settings import Settings
from app.tasks.languages import DEFAULT_LANGUAGE, LANGUAGES
from app.tasks.presets import PRESETS, PRESETS_BY_KEY, TaskPreset, checkpoint_warning
from app.tasks.prompts import CaptionStyle, TaskKind, TaskRequest, build_prompt, parse_classes

ERROR_STYLE = "color: #c62828;"
# Both colours set: a light background with the theme's (possibly light) text is unreadable.
WARNING_STYLE = (
    "background: #fff3cd; color: #664d03; border: 1px solid #e0c36a; "
    "border-radius: 3px; padding: 4px;"
)


class TaskPanel(QWidget):
    """Lets the user pick a task and fill in what it needs; emits intents, runs nothing."""

    request_changed = Signal()
    run_requested = Signal()
    run_all_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._busy = False
        self._run_enabled = True
        self._run_reason = ""
        self._checkpoint_kind = "unknown"
        # Each kind of input keeps its own text, so switching presets loses nothing.
        self._texts: dict[str, str] = {"question": "", "answer": "", "classes": "", "prompt": ""}
        self._build()
        self._radios[0].setChecked(True)
        self._show_preset()

    # --- public interface ------------------------------------------------------------

    def preset(self) -> TaskPreset:
        """The selected preset."""
        return PRESETS[max(self._group.checkedId(), 0)]

    def set_preset(self, key: str) -> None:
        """Select the preset called ``key`` (see ``PRESETS``); unknown keys are ignored."""
        if key in PRESETS_BY_KEY:
            self._radios[PRESETS.index(PRESETS_BY_KEY[key])].setChecked(True)

    def request(self) -> TaskRequest | None:
        """The task as filled in, or None while it lacks something it needs."""
        request = self._raw_request()
        try:
            build_prompt(request)
        except TaskError:
            return None
        return request

    def prompt(self) -> str | None:
        """The exact prompt the task sends, or None while it is incomplete."""
        try:
            return build_prompt(self._raw_request())
        except TaskError:
            return None

    def problem(self) -> str | None:
        """Why the task cannot run as filled in (a sentence for the user), or None."""
        try:
            build_prompt(self._raw_request())
        except TaskError as error:
            return str(error)
        return None

    def language(self) -> str:
        """The selected language code, e.g. "en"."""
        return str(self.language_combo.currentData() or DEFAULT_LANGUAGE)

    def set_busy(self, busy: bool) -> None:
        """While busy, Run is off and Cancel on."""
        self._busy = busy
        self._update_buttons()

    def set_run_enabled(self, enabled: bool, reason: str = "") -> None:
        """Allow or forbid running (e.g. no model loaded); ``reason`` becomes the tooltip."""
        self._run_enabled = enabled
        self._run_reason = reason
        self._update_buttons()

    def set_checkpoint_kind(self, kind: str) -> None:
        """Tell the panel which checkpoint is loaded: "pt", "mix" or "unknown"."""
        self._checkpoint_kind = kind
        self._update_warning()

    def load_settings(self, settings: Settings) -> None:
        """Show the task, caption style, language and object list ``settings`` remember."""
        self._texts["classes"] = settings.detect_classes
        index = self.language_combo.findData(settings.language)
        self.language_combo.setCurrentIndex(index if index >= 0 else self._default_language)
        if settings.last_task == TaskKind.CAPTION.value:
            key = settings.caption_style if settings.caption_style in PRESETS_BY_KEY else "caption"
        else:
            key = settings.last_task
        self.set_preset(key if key in PRESETS_BY_KEY else "caption")
        self._show_preset()

    def save_settings(self, settings: Settings) -> None:
        """Write the task, caption style, language and object list into ``settings``."""
        preset = self.preset()
        settings.last_task = preset.kind.value
        if preset.caption_style is not None:
            settings.caption_style = preset.caption_style.value
        settings.language = self.language()
        settings.detect_classes = self._texts["classes"]

    # --- building --------------------------------------------------------------------

    def _build(self) -> None:
        tasks = QGroupBox("Task")
        task_layout = QVBoxLayout(tasks)
        self._group = QButtonGroup(self)
        self._radios: list[QRadioButton] = []
        for index, preset in enumerate(PRESETS):
            radio = QRadioButton(preset.label)
            self._group.addButton(radio, index)
            task_layout.addWidget(radio)
            self._radios.append(radio)
        self._group.idToggled.connect(self._on_preset_toggled)

        form = QFormLayout()
        self.input_label = QLabel()
        self.input_edit = QLineEdit()
        self.input_edit.setClearButtonEnabled(True)
        self.input_edit.textChanged.connect(self._on_input_changed)
        form.addRow(self.input_label, self.input_edit)

        self.language_combo = QComboBox()
        for code, name in LANGUAGES.items():
            self.language_combo.addItem(f"{name} ({code})", code)
        self._default_language = self.language_combo.findData(DEFAULT_LANGUAGE)
        self.language_combo.setCurrentIndex(self._default_language)
        self.language_combo.currentIndexChanged.connect(lambda _index: self._refresh())
        form.addRow("Language:", self.language_combo)

        self.preview = QLabel()
        self.preview.setWordWrap(True)
        self.preview.setTextFormat(Qt.TextFormat.PlainText)  # prompts may hold "<"
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Prompt sent:", self.preview)

        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet(WARNING_STYLE)
        self.warning_label.hide()

        self.run_button = QPushButton("Run")
        self.run_all_button = QPushButton("Run all")
        self.cancel_button = QPushButton("Cancel")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run_requested)
        self.run_all_button.clicked.connect(self.run_all_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.run_all_button, self.cancel_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(tasks)
        layout.addLayout(form)
        layout.addWidget(self.warning_label)
        layout.addLayout(buttons)
        layout.addStretch(1)

    # --- reacting --------------------------------------------------------------------

    def _on_preset_toggled(self, _id: int, checked: bool) -> None:
        if checked:  # the button being unchecked reports too; react once
            self._show_preset()

    def _show_preset(self) -> None:
        preset = self.preset()
        has_field = preset.field is not None
        self.input_label.setVisible(has_field)
        self.input_edit.setVisible(has_field)
        if preset.field is not None:
            self.input_label.setText(preset.field_label)
            self.input_edit.setPlaceholderText(preset.placeholder)
            self.input_edit.blockSignals(True)  # showing stored text is not an edit
            self.input_edit.setText(self._texts[preset.field])
            self.input_edit.blockSignals(False)
        self.language_combo.setEnabled(preset.uses_language)
        self._refresh()

    def _on_input_changed(self, text: str) -> None:
        field = self.preset().field
        if field is not None:
            self._texts[field] = text
        self._refresh()

    def _refresh(self) -> None:
        problem = self.problem()
        if problem is None:
            self.preview.setText(self.prompt() or "")
            self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            self.preview.setStyleSheet("")
        else:
            self.preview.setText(problem)
            self.preview.setFont(self.font())
            self.preview.setStyleSheet(ERROR_STYLE)
        self._update_warning()
        self._update_buttons()
        self.request_changed.emit()

    def _update_warning(self) -> None:
        warning = checkpoint_warning(self.preset(), self._checkpoint_kind)
        self.warning_label.setText(warning)
        self.warning_label.setVisible(bool(warning))

    def _update_buttons(self) -> None:
        problem = self.problem()
        if self._busy:
            reason = "A task is running; cancel it or wait for it to finish."
        elif not self._run_enabled:
            reason = self._run_reason
        else:
            reason = problem or ""
        can_run = not self._busy and self._run_enabled and problem is None
        self.run_button.setEnabled(can_run)
        self.run_button.setToolTip(reason if not can_run else "Run the task on the image")
        self.run_all_button.setEnabled(can_run)
        self.run_all_button.setToolTip("Run the task on every queued image" if can_run
                                       else reason)
        self.cancel_button.setEnabled(self._busy)

    def _raw_request(self) -> TaskRequest:
        preset = self.preset()
        return TaskRequest(
            kind=preset.kind,
            lang=self.language(),
            caption_style=preset.caption_style or CaptionStyle.CAPTION,
            question=self._texts["question"],
            answer=self._texts["answer"],
            classes=parse_classes(self._texts["classes"]),
            prompt=self._texts["prompt"],
        )
