"""Shown while no model is loaded: how to get one, and a button to choose a folder."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

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


class FirstRunPanel(QFrame):
    choose_folder_requested = Signal()
    models_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        text = QLabel(_TEXT)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        get = QPushButton("Get a Model…")
        get.clicked.connect(self.models_requested)
        button = QPushButton("Choose Model Folder…")
        button.clicked.connect(self.choose_folder_requested)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        row = QHBoxLayout()
        row.addWidget(get)
        row.addWidget(button)
        layout.addLayout(row)
        self.button = button
