"""dmgbuild settings for PaliDesk's disk image: the app and an Applications link, so
installing is one drag. Used by packaging/macos/build.sh:

    python -m dmgbuild -s packaging/macos/dmg_settings.py -D app=dist/PaliDesk.app \\
        "PaliDesk 0.1.0" dist/PaliDesk-0.1.0-macos-arm64-metal.dmg

dmgbuild runs this file with ``defines`` (the -D values) in its namespace.
"""

import os.path

application = defines.get("app", "dist/PaliDesk.app")  # noqa: F821 (set by dmgbuild)
appname = os.path.basename(application)

format = "UDZO"  # zlib-compressed, readable on every macOS PaliDesk supports
filesystem = "HFS+"
size = None  # dmgbuild computes it
files = [application]
symlinks = {"Applications": "/Applications"}
icon = os.path.join(application, "Contents", "Resources", "palidesk.icns")
if not os.path.exists(icon):
    icon = None
badge_icon = None

background = "builtin-arrow"
show_status_bar = False
show_tab_view = False
show_toolbar = False
show_pathbar = False
show_sidebar = False
window_rect = ((200, 200), (640, 300))
default_view = "icon-view"
icon_size = 128
text_size = 13
icon_locations = {appname: (160, 130), "Applications": (480, 130)}
