"""Names for damaged files kept aside (settings, history), so nothing is ever lost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


def backup_path(path: Path) -> Path:
    """A free ``<name>.bad-YYYYmmdd-HHMMSS[-N]`` beside ``path``.

    Two damaged files in the same second must not replace each other, hence the counter.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.bad-{stamp}")
    counter = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.bad-{stamp}-{counter}")
        counter += 1
    return backup
