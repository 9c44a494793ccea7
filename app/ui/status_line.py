"""The window's status bar: the batch line and bar, the device and the loaded model."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QStatusBar

from app.session.batch import Batch


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" to the room it has (the whole
    text is its tooltip), so a long sentence never runs under the status bar's widgets."""

    def __init__(self) -> None:
        super().__init__()
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight,
                                              max(self.width(), 40))
        super().setText(shown)


class StatusLine:
    """Widgets added to ``bar``; the window tells it what to show."""

    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.model_label, self.device_label, self.batch_label = (
            QLabel("No model"), QLabel(), ElidedLabel())
        self.batch_bar = QProgressBar()
        self.batch_bar.setMaximumWidth(220)
        self.batch_bar.hide()
        bar.addWidget(self.batch_label, 1)
        for widget in (self.batch_bar, self.device_label, self.model_label):
            bar.addPermanentWidget(widget)

    def show_loading(self, name: str) -> None:
        self.model_label.setText(f"Loading {name}…")

    def show_model(self, text: str, device: str, tooltip: str = "") -> None:
        self.model_label.setText(text)
        self.model_label.setToolTip(tooltip)
        self.device_label.setText(device)

    def show_no_model(self) -> None:
        self.model_label.setText("No model")
        self.model_label.setToolTip("")
        self.device_label.setText("")

    def show_batch(self, batch: Batch | None) -> None:
        """The batch's own words; the line stays after it ended, until the next one."""
        if batch is None:
            return
        self.batch_label.setText(batch.summary())
        self.batch_bar.setRange(0, batch.total)
        self.batch_bar.setValue(batch.ended)
        self.batch_bar.setVisible(batch.active)

    def show_message(self, text: str) -> None:
        self.batch_label.setText(text)
