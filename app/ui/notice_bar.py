"""A dismissible line of notices above the image: never a blocking dialog for things the
user only needs to know (skipped files, a settings file kept aside, a failed load)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton


class NoticeBar(QFrame):
    """Shows the latest notice; the close button hides it until the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        # An optional button that acts on the notice ("Get Mask Decoder…"); hidden otherwise.
        self.action_button = QPushButton()
        self.action_button.hide()
        self.action_button.clicked.connect(self._run_action)
        self._action: Callable[[], None] | None = None
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.history: list[str] = []
        self.showing_error = False
        self.hide()

    def show_notice(self, message: str, error: bool = False,
                    action: tuple[str, Callable[[], None]] | None = None) -> None:
        """Show ``message``; ``action`` = (button text, what it does) adds a button."""
        self._action = None if action is None else action[1]
        self.action_button.setText("" if action is None else action[0])
        self.action_button.setVisible(action is not None)
        self.history.append(message)
        self.showing_error = error
        color = "#c62828" if error else "palette(window-text)"
        self.label.setStyleSheet(f"color: {color};")
        self.label.setText(message)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def clear_error(self) -> None:
        """Hide the notice if it reports an error: the problem has since been fixed."""
        if self.showing_error:
            self.showing_error = False
            self.hide()

    def _run_action(self) -> None:
        if self._action is not None:
            self._action()
