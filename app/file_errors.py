"""One way to tell a user why a file could not be read or written.

Settings, exports, conversion, quantization and the user folders all meet the same
OSErrors (a full disk, no permission, a file where a folder should be); each caller says
what it was doing and what is kept, this module says what went wrong, in the same words
everywhere.
"""

from __future__ import annotations

import errno
from pathlib import Path

_NO_PERMISSION = (errno.EACCES, errno.EPERM)


def blocking_file(path: Path) -> Path | None:
    """The first of ``path``'s parents that exists but is not a folder, if any."""
    for parent in reversed(Path(path).parents):
        try:
            if parent.exists() and not parent.is_dir():
                return parent
        except OSError:
            return None
    return None


def reason(exc: OSError, path: Path) -> str:
    """Why ``exc`` happened on ``path``, as a clause ("the disk is full")."""
    code = exc.errno
    if code == errno.ENOSPC or code == errno.EDQUOT:
        return "the disk is full"
    if code in _NO_PERMISSION:
        return "PaliDesk is not allowed to write there (check the folder's permissions)"
    if code == errno.EROFS:
        return "the disk is read-only"
    if code == errno.ENOTDIR or code == errno.EEXIST:
        blocker = blocking_file(path)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    if code == errno.ELOOP:
        return "it is a symbolic link that leads back to itself"
    if code == errno.EISDIR:
        return "it is a folder, not a file"
    if code == errno.ENOENT:
        return "its folder does not exist"
    return exc.strerror or str(exc)


def sentence(exc: OSError, doing: str, path: Path, afterwards: str = "") -> str:
    """A complete message: "PaliDesk could not <doing>: <reason>. <afterwards>".

    ``doing`` names the action and the file ("save its settings to /x/settings.json");
    ``afterwards`` says what the user keeps or should do ("The previous settings are
    unchanged."). A full disk is the common case and gets its own advice.
    """
    why = reason(exc, path)
    if why == "the disk is full":
        text = f"The disk is full, so PaliDesk could not {doing}. Free some space and try again."
    elif exc.errno in _NO_PERMISSION:
        text = (f"PaliDesk is not allowed to {doing}. Choose another folder, or check the "
                "folder's permissions.")
    else:
        text = f"PaliDesk could not {doing}: {why}."
    return f"{text} {afterwards}".strip()
