"""PaliDesk's override of PyInstaller's ``PySide6.QtGui`` hook (a user hook wins over it).

Same Qt files as upstream, less the plugins PaliDesk never loads. Dropping them here,
before PyInstaller scans binaries, also keeps out what only they link: GTK, Pango and
Cairo (the gtk3 theme), Wayland and EGLFS libraries, Qt Svg and Qt Pdf.

Platforms kept: xcb (X11, and XWayland on Wayland desktops), offscreen (the self-test
and CI), minimal, cocoa (macOS), windows.
"""

from __future__ import annotations

from pathlib import PurePath

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

KEEP_PLATFORMS = ("xcb", "offscreen", "minimal", "cocoa", "windows")
DROP_PLUGIN_DIRS = ("egldeviceintegrations", "generic", "wayland-decoration-client",
                    "wayland-graphics-integration-client", "wayland-shell-integration")
DROP_PLUGIN_NAMES = ("gtk3", "svg", "pdf")  # platformthemes/qgtk3, imageformats/qsvg...


def _plugin_name(path: PurePath) -> str:
    stem = path.name.split(".")[0]
    return stem.removeprefix("lib").removeprefix("q")


def wanted(src: str, dest: str) -> bool:
    """Whether a Qt file (as the upstream hook lists it) belongs in PaliDesk's bundle."""
    parts = PurePath(dest.replace("\\", "/")).parts
    if "plugins" not in parts:
        return True
    below = parts[parts.index("plugins") + 1:]  # ("platforms",), ("platforms", "darwin")
    name = _plugin_name(PurePath(src))
    if below and below[0] in DROP_PLUGIN_DIRS:
        return False
    if below == ("platforms",):
        return name in KEEP_PLATFORMS
    return not any(word in name for word in DROP_PLUGIN_NAMES)


hiddenimports, binaries, datas = add_qt6_dependencies(__file__)
binaries = [(src, dest) for src, dest in binaries if wanted(src, dest)]
datas = [(src, dest) for src, dest in datas if wanted(src, dest)]
