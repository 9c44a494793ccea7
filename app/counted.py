"""A count with its noun in the right number: "1 file", "2 files"."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "file")`` is "1 file"; ``counted(3, "file")`` is "3 files"."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
