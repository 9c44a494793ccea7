#!/bin/sh
# Add PaliDesk from this unpacked .tar.gz to your desktop's app menu (for this user only):
# the .desktop file with this folder's path, and the icon. Run it again after moving the
# folder; remove with: rm ~/.local/share/applications/palidesk.desktop
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
APPS=${XDG_DATA_HOME:-$HOME/.local/share}/applications
ICONS=${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps
mkdir -p "$APPS" "$ICONS"
cp "$HERE/palidesk-256.png" "$ICONS/palidesk.png"
sed -e "s|^Exec=palidesk|Exec=\"$HERE/palidesk\"|" -e "s|^TryExec=palidesk|TryExec=$HERE/palidesk|" \
    "$HERE/palidesk.desktop" > "$APPS/palidesk.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$APPS" || true
echo "PaliDesk is in your app menu ($APPS/palidesk.desktop)."
