#!/usr/bin/env bash
# macOS: build dist/PaliDesk.app with packaging/palidesk.spec (Info.plist entries are in
# the spec) and pack it as dist/PaliDesk-<version>-macos-<arch>-<variant>.dmg with dmgbuild.
#
#     PY=build/venv-metal/bin/python packaging/macos/build.sh [--dmg-only]
#
# PY defaults to .venv/bin/python; --dmg-only packs an already built .app (what
# packaging/build_variant.sh does). The .app is ad-hoc signed by PyInstaller, not
# notarized: on first start macOS asks to confirm (right-click > Open), see the README.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DMGBUILD_VERSION=1.6.7
APP=dist/PaliDesk.app

[[ ${1:-} == --dmg-only ]] || "$PY" packaging/build_bundle.py
[[ -d $APP ]] || { echo "no $APP: build the bundle first" >&2; exit 1; }
if ! "$PY" -c "import dmgbuild" 2>/dev/null; then
    "$PY" -m pip install --quiet "dmgbuild==$DMGBUILD_VERSION"
fi

RECORD=$APP/Contents/Resources/palidesk-build.json
[[ -f $RECORD ]] || RECORD=$APP/Contents/Frameworks/palidesk-build.json
field() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$RECORD" "$1"; }
VERSION=$(field palidesk)
VARIANT=$(field variant)
DMG=dist/PaliDesk-$VERSION-macos-$(uname -m)-$VARIANT.dmg

rm -f "$DMG"
"$PY" -m dmgbuild -s packaging/macos/dmg_settings.py -D app="$APP" "PaliDesk $VERSION" "$DMG"
echo "wrote $DMG ($(du -m "$DMG" | cut -f1) MB)"
