"""Shown while no model is loaded: how to get one, and a button to choose a folder."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout

_TEXT = """<h3>No model loaded</h3>
<p>PaliDesk runs Google's PaliGemma 2 on your computer. It needs a <b>model folder</b>:
a checkpoint converted for llama.cpp.</p>
<ol>
<li>Download a PaliGemma 2 checkpoint from Hugging Face, e.g.
<code>google/paligemma2-3b-mix-224</code> (accept its licence there first).</li>
<li>Convert and quantize it in a terminal:<br>
<code>palidesk convert ~/hf/paligemma2-3b-mix-224 --out ~/models/pg2-3b-mix-224</code><br>
<code>palidesk quantize ~/models/pg2-3b-mix-224 --type Q4_K_M</code></li>
<li>Choose that folder here.</li>
</ol>
<p>Meanwhile you can already drop images onto the window.</p>"""


class FirstRunPanel(QFrame):
    choose_folder_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        text = QLabel(_TEXT)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        button = QPushButton("Choose Model Folder…")
        button.clicked.connect(self.choose_folder_requested)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(button)
        self.button = button
