"""Before the window opens: is there a display, and is the first word really a file?

Plain ``palidesk`` opens the window and ``palidesk photo.jpg`` opens it on that image;
without a display Qt aborts the process (exit 134) with a page of plugin notes, and a
mistyped command (``palidesk scroe``) went the same way, taken for an image.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

# Qt platforms that need no display server: set on purpose, they must be let through.
_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


def no_display_problem() -> str | None:
    """Why the window cannot open here (Linux/BSD without X11 or Wayland), or None."""
    if sys.platform in ("win32", "darwin"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in _HEADLESS_PLATFORMS:
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("there is no display to open the PaliDesk window on (neither DISPLAY nor "
            "WAYLAND_DISPLAY is set, e.g. over SSH). From a terminal, run a task with "
            "`palidesk run IMAGE --model NAME --task caption`, or see `palidesk --help` "
            "for every command.")


def looks_like_command(word: str) -> bool:
    """True for a bare word that names no file: no folder part, no extension, not on disk."""
    if os.sep in word or "/" in word or Path(word).suffix:
        return False
    try:
        return not Path(word).exists()
    except OSError:
        return True


def unknown_command(word: str, commands: Iterable[str]) -> str:
    """argparse's error text for a word that names no command (and no file)."""
    close = difflib.get_close_matches(word.lower(), sorted(commands), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    return (f"{word!r} is not a command, nor an image file here.{hint} "
            "See `palidesk --help` for the commands.")
