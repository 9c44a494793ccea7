"""The model's output as people read it: without the special-token markers it writes.

One cleaner for exports, History, ``eval``'s answers and the results panel.
"""

from __future__ import annotations

# Special tokens rendered in the output text that are not part of the answer.
MARKERS = ("<eos>", "<pad>", "<bos>")
END_MARKER = "<eos>"


def clean_output_text(text: str) -> str:
    """The answer without ``<eos>``/``<pad>``/``<bos>`` markers or surrounding space."""
    for marker in MARKERS:
        text = text.replace(marker, "")
    return text.strip()


def without_end_marker(text: str) -> str:
    """The output as it streams in, without the trailing ``<eos>`` the model ends with
    (the text is otherwise shown as written, spaces included, until it ends)."""
    stripped = text.rstrip()
    return stripped.removesuffix(END_MARKER) if stripped.endswith(END_MARKER) else text
