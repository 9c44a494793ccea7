"""Files written whole or not at all: the one way PaliDesk replaces a file.

Settings, exports, manifests and GGUF files are written under a temporary name beside
the target, flushed to disk, given the mode the target had (or the umask's default for a
new file) and renamed into place. A failure or an interruption leaves the old file as it
was; at most a ``*.partial`` file remains after a hard kill.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


@contextmanager
def atomic_path(final: Path, *, reuse_leftover: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it replaces ``final``.

    By default the temporary name is unique, so two processes saving the same file never
    write into each other's copy. ``reuse_leftover`` names it ``<final>.partial`` instead:
    for multi-gigabyte model files, where the next run must overwrite what a killed run
    left rather than pile up copies. Raises OSError (the caller words it).
    """
    final = Path(final)
    if reuse_leftover:
        temp = final.with_name(final.name + PARTIAL_SUFFIX)
    else:
        handle, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.",
                                        suffix=PARTIAL_SUFFIX)
        os.close(handle)
        temp = Path(name)
    try:
        yield temp
        move_into_place(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def move_into_place(temp: Path, final: Path) -> None:
    """Give a finished file beside ``final`` (e.g. a download that resumed over several
    runs) its final name: flushed to disk, with ``final``'s mode, renamed. Raises OSError."""
    _sync(temp)
    os.chmod(temp, _mode_for(final))
    os.replace(temp, final)


def write_text_atomic(path: Path, text: str, *, newline: str | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` through ``atomic_path``. Raises OSError.

    ``newline=""`` keeps the text's own line ends (CSV needs its ``\\r\\n`` as is).
    """
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8", newline=newline) as file:
        file.write(text)


def _sync(path: Path) -> None:
    # The rename must not reach the disk before the data, or a power cut could leave an
    # empty file under the final name.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mode_for(final: Path) -> int:
    """The permission bits the new file gets: the old file's, else the umask default."""
    try:
        return stat.S_IMODE(os.stat(final).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """This process's umask, read without changing it where the system allows."""
    try:
        status = Path("/proc/self/status").read_text()
        match = re.search(r"^Umask:\s*([0-7]+)", status, re.MULTILINE)
        if match:
            return int(match[1], 8)
    except OSError:
        pass
    # Elsewhere the only way is to set it and put it back (briefly process-wide).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
