#!/usr/bin/env bash
# Package dist/palidesk (from packaging/build_bundle.py) as
#   dist/palidesk_<version>_<arch>-<variant>.deb        (dpkg-deb; /opt/palidesk + menu entry)
#   dist/palidesk-<version>-linux-<machine>-<variant>.tar.gz  (the bundle + .desktop + icon)
# The variant (cpu, cuda, ...) is read from the bundle's build record.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUNDLE=dist/palidesk
[[ -x $BUNDLE/palidesk ]] || { echo "build the bundle first: packaging/build_bundle.py" >&2; exit 1; }

field() {  # field NAME: a value from the bundle's palidesk-build.json
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$BUNDLE/_internal/palidesk-build.json" "$1"
}
VERSION=$(field palidesk)
VARIANT=$(field variant)
ARCH=$(dpkg --print-architecture)
MACHINE=$(uname -m)
DEB=dist/palidesk_${VERSION}_${ARCH}-${VARIANT}.deb
TARBALL=dist/palidesk-${VERSION}-linux-${MACHINE}-${VARIANT}.tar.gz
MAINTAINER=${PALIDESK_MAINTAINER:-PaliDesk developers <palidesk@localhost>}

# What the bundle links from the system (ldd of every bundled library, mapped to packages
# on Debian 12): the Qt xcb platform's X11/xcb/xkbcommon libraries, fonts, GL/EGL
# dispatch, GLib and D-Bus (Qt Core/Gui), and the C/C++ runtimes (never bundled; see the
# spec). libglib2.0-0t64 is the name from Debian 13 / Ubuntu 24.04 on.
DEPENDS="libc6 (>= 2.35), libgcc-s1, libstdc++6 (>= 12), libexpat1, libzstd1,
 libglib2.0-0t64 | libglib2.0-0, libdbus-1-3, libfontconfig1, libfreetype6, libegl1, libgl1,
 libx11-6, libx11-xcb1, libxcb1, libxcb-cursor0, libxcb-glx0, libxcb-icccm4, libxcb-image0,
 libxcb-keysyms1, libxcb-randr0, libxcb-render0, libxcb-render-util0, libxcb-shape0,
 libxcb-shm0, libxcb-sync1, libxcb-util1, libxcb-xfixes0, libxcb-xkb1, libxkbcommon0,
 libxkbcommon-x11-0"

STAGE=build/deb-$VARIANT
rm -rf "$STAGE"
PKG=$STAGE/root
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" \
    "$PKG/usr/share/doc/palidesk"
cp -a "$BUNDLE" "$PKG/opt/palidesk"
cat > "$PKG/usr/bin/palidesk" <<'SH'
#!/bin/sh
# PaliDesk's launcher: the bundle finds its libraries next to the real executable.
exec /opt/palidesk/palidesk "$@"
SH
chmod 755 "$PKG/usr/bin/palidesk"
cp packaging/linux/palidesk.desktop "$PKG/usr/share/applications/palidesk.desktop"
for px in 48 128 256; do
    dir=$PKG/usr/share/icons/hicolor/${px}x${px}/apps
    mkdir -p "$dir"
    cp "resources/icons/palidesk-$px.png" "$dir/palidesk.png"
done
cat > "$PKG/usr/share/doc/palidesk/copyright" <<TXT
PaliDesk $VERSION ($VARIANT build of llama.cpp through llama-cpp-python)
License: Apache-2.0
Bundled components keep their own licenses (Qt/PySide6: LGPL-3.0; Python: PSF;
llama.cpp: MIT; NumPy, Pillow and the others: see /opt/palidesk/_internal).
TXT
chmod -R u+rwX,go+rX,go-w "$PKG"

INSTALLED_KB=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat > "$PKG/DEBIAN/control" <<TXT
Package: palidesk
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_KB
Depends: $(echo $DEPENDS)
Section: graphics
Priority: optional
Description: PaliGemma 2 vision-language model on your desktop ($VARIANT build)
 Caption images, read their text, answer questions about them, detect and
 segment objects, with Google's PaliGemma 2 running locally on llama.cpp.
 This is the $VARIANT build of llama.cpp. Models are downloaded or converted
 from the app (File > Models).
TXT
# The menu and icon caches are refreshed by dpkg triggers (desktop-file-utils,
# hicolor-icon-theme); no maintainer scripts are needed.
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "wrote $DEB ($(du -m "$DEB" | cut -f1) MB; installed $((INSTALLED_KB / 1024)) MB)"

# The tarball: unpack anywhere, run ./palidesk, or ./install-desktop-entry.sh for the menu.
TOP=palidesk-$VERSION
TSTAGE=$STAGE/tar
mkdir -p "$TSTAGE"
cp -a "$BUNDLE" "$TSTAGE/$TOP"
cp packaging/linux/palidesk.desktop resources/icons/palidesk-256.png "$TSTAGE/$TOP/"
cp packaging/linux/install-desktop-entry.sh "$TSTAGE/$TOP/"
tar -C "$TSTAGE" -cf - "$TOP" | gzip -6 > "$TARBALL"
echo "wrote $TARBALL ($(du -m "$TARBALL" | cut -f1) MB)"
rm -rf "$TSTAGE"
cd "$ROOT"
