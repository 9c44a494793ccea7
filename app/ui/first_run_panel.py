"""Shown while no model is loaded: how to get one, and a button to choose a folder; while
the saved model loads at start, it says so instead (the window is not missing a model)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

_TEXT = """<h3>No model loaded</h3>
<p>PaliDesk runs Google's PaliGemma 2 on your computer. It needs a <b>model folder</b>:
a checkpoint converted for llama.cpp.</p>
<p><b>Get a Model…</b> lists every PaliGemma 2 checkpoint with how it fits this
computer, and downloads, converts and quantizes the one you pick (accept its licence on
Hugging Face first). It also imports a checkpoint folder you already have, such as your
own fine-tune.</p>
<p>In a terminal: <code>palidesk models pull paligemma2-3b-mix-224</code>, or
<code>palidesk convert HF_FOLDER --out MODEL_FOLDER</code> then choose that folder.</p>
<p>Meanwhile you can already drop images onto the window.</p>"""
_LOADING = """<h3>Loading {name}…</h3>
<p>PaliDesk is loading the model it used last time; this takes a few seconds to a
minute. Meanwhile you can already add images: Run works once the model is loaded.</p>"""


class FirstRunPanel(QFrame):
    choose_folder_requested = Signal()
    models_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        text = QLabel(_TEXT)
        self.text = text
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        get = QPushButton("Get a Model…")
        get.clicked.connect(self.models_requested)
        button = QPushButton("Choose Model Folder…")
        button.clicked.connect(self.choose_folder_requested)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # moving: a load tells no progress
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(8)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.busy)
        row = QHBoxLayout()
        row.addWidget(get)
        row.addWidget(button)
        layout.addLayout(row)
        self.button = button
        self.buttons = (get, button)
        self.loading = False

    def show_loading(self, name: str) -> None:
        """Say that the model ``name`` is loading (no "No model loaded" meanwhile)."""
        self.loading = True
        self.text.setText(_LOADING.format(name=escape(name)))
        self.busy.show()
        for button in self.buttons:
            button.hide()
        self.show()

    def show_no_model(self) -> None:
        """How to get a model: no model is loaded and none is loading."""
        self.loading = False
        self.text.setText(_TEXT)
        self.busy.hide()
        for button in self.buttons:
            button.show()
        self.show()
