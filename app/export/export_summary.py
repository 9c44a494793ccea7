"""What an export did, for the window to report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ExportSummary:
    """Files written, and files left alone (the user declined to overwrite, or there
    was nothing valid to write)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
