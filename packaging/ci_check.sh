#!/usr/bin/env bash
# Packaging check, run by .ci/run after the tests: build the frozen bundle and the .deb,
# unpack the .deb into a temporary root (no install), check that every bundled library
# resolves on this system, and run the unpacked app's --self-test offscreen. Fails on any
# step. Needs the venv from `tools/bootstrap.py --dev`; installs PyInstaller into it and
# the .deb's missing Depends with apt-get when absent. About 2 minutes on 2 cores; see
# docs/packaging.md. `--no-build` checks the .deb already in dist/ (build_variant.sh's).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PYINSTALLER_VERSION=6.22.3
SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
started=$SECONDS
step() { echo "== packaging check: $* [$((SECONDS - started)) s]"; }

if [[ ${1:-} != --no-build ]]; then
    step "PyInstaller $PYINSTALLER_VERSION"
    if [[ $($PY -m PyInstaller --version 2>/dev/null || true) != "$PYINSTALLER_VERSION" ]]; then
        $PY -m pip install --quiet "pyinstaller==$PYINSTALLER_VERSION"
    fi

    step "bundle"
    nice -n 5 $PY packaging/build_bundle.py

    step ".deb and .tar.gz"
    rm -f dist/palidesk_*.deb dist/palidesk-*.tar.gz
    nice -n 5 bash packaging/linux/build_deb.sh
fi
deb=$(ls -t dist/palidesk_*.deb | head -1)

step "the .deb's Depends on this system"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
missing=()
IFS=',' read -ra items <<< "$(dpkg-deb -f "$deb" Depends)"
for item in "${items[@]}"; do
    IFS='|' read -ra alternatives <<< "$item"
    names=()
    for alternative in "${alternatives[@]}"; do names+=("$(awk '{print $1}' <<< "$alternative")"); done
    ok=no
    for name in "${names[@]}"; do installed "$name" && ok=yes && break; done
    [[ $ok == yes ]] || missing+=("${names[*]}")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    to_install=()
    for names in "${missing[@]}"; do  # the first alternative this release knows
        for name in $names; do
            if apt-cache show "$name" >/dev/null 2>&1; then to_install+=("$name"); break; fi
        done
    done
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${to_install[@]}" >/dev/null
fi

step "unpack into a temporary root"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
app=$root/opt/palidesk
for path in usr/bin/palidesk usr/share/applications/palidesk.desktop \
        usr/share/icons/hicolor/256x256/apps/palidesk.png opt/palidesk/palidesk \
        opt/palidesk/_internal/palidesk-build.json; do
    [[ -e $root/$path ]] || { echo "the .deb lacks /$path" >&2; exit 1; }
done
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$root/usr/share/applications/palidesk.desktop"
fi
unresolved=$(find "$app" -type f -name '*.so*' -print0 \
    | LD_LIBRARY_PATH=$app/_internal xargs -0 ldd 2>/dev/null | grep "not found" | sort -u || true)
if [[ -n $unresolved ]]; then
    echo "bundled libraries need what this system lacks (add to the .deb's Depends):" >&2
    echo "$unresolved" >&2
    exit 1
fi

step "self-test of the unpacked app"
if ! QT_QPA_PLATFORM=offscreen "$app/palidesk" --self-test 2> >(grep -v propagateSizeHints >&2); then
    echo "packaging check FAILED: the unpacked app's --self-test did not pass" >&2
    exit 1
fi

bundle_mb=$(du -sm dist/palidesk | cut -f1)
tarball=$(ls -t dist/palidesk-*.tar.gz | head -1)
echo "packaging check passed in $((SECONDS - started)) s: bundle ${bundle_mb} MiB," \
    "$(basename "$deb") $(du -m "$deb" | cut -f1) MiB," \
    "$(basename "$tarball") $(du -m "$tarball" | cut -f1) MiB"
