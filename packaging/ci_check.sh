#!/usr/bin/env bash
# Packaging check, run by .ci/run after the tests: build the release -cpu installers the
# way they ship (packaging/build_variant.sh cpu: llama.cpp with every x86 CPU variant,
# loaded at run time; its own venv and cached wheel), unpack the .deb into a temporary
# root (no install), check that every bundled library resolves on this system, run the
# unpacked app's --self-test offscreen, check the CPU variant it chose, then that it falls
# back to the next best without that file and fails with a clear error (no crash) without
# any. Fails on any step. Installs the .deb's missing Depends with apt-get when absent.
# Cold (no cached llama.cpp wheel) the variant build takes ~25 min on 2 cores; cached,
# the whole check takes ~4 min. See docs/packaging.md. `--no-build` checks the .deb
# already in dist/ (build_variant.sh's).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
started=$SECONDS
step() { echo "== packaging check: $* [$((SECONDS - started)) s]"; }

if [[ ${1:-} != --no-build ]]; then
    step "release build (packaging/build_variant.sh cpu)"
    rm -f dist/palidesk_*.deb dist/palidesk-*.tar.gz
    # The release bundle uses the dev venv's Python when there is one (CI: the same
    # Python the tests ran on), else build_variant.sh's default.
    if [[ -z ${PYTHON:-} && -x .venv/bin/python ]]; then
        PYTHON=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
        export PYTHON
    fi
    bash packaging/build_variant.sh cpu
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
lib=$app/_internal/llama_cpp/lib
# The CPU variant modules find libggml-base at run time because libggml has loaded it
# already; ldd needs the folder spelled out.
unresolved=$(find "$app" -type f -name '*.so*' -print0 \
    | LD_LIBRARY_PATH=$app/_internal:$lib xargs -0 ldd 2>/dev/null | grep "not found" | sort -u || true)
if [[ -n $unresolved ]]; then
    echo "bundled libraries need what this system lacks (add to the .deb's Depends):" >&2
    echo "$unresolved" >&2
    exit 1
fi

step "self-test of the unpacked app"
if ! QT_QPA_PLATFORM=offscreen "$app/palidesk" --self-test 2> >(grep -v propagateSizeHints >&2) \
        | tee "$root/selftest.txt"; then
    echo "packaging check FAILED: the unpacked app's --self-test did not pass" >&2
    exit 1
fi

variants=$(find "$lib" -name 'libggml-cpu-*.so' | wc -l)
if ((variants > 0)); then
    step "the CPU variant it chose ($variants variant files)"
    python3 packaging/check_cpu_variant.py --lib-dir "$lib" --output "$root/selftest.txt"
    chosen=$(sed -n 's/^CPU backend: *\([^ ]*\).*/\1/p' "$root/selftest.txt")

    step "without libggml-cpu-$chosen.so: the next best"
    mkdir "$root/hidden"
    mv "$lib/libggml-cpu-$chosen.so" "$root/hidden/"
    "$app/palidesk" hardware | tee "$root/hardware.txt" | grep -i "cpu backend"
    python3 packaging/check_cpu_variant.py --lib-dir "$lib" --output "$root/hardware.txt" \
        --exclude "$chosen"

    step "without any CPU variant: a clear error, not a crash"
    mv "$lib"/libggml-cpu-*.so "$root/hidden/"
    status=0
    QT_QPA_PLATFORM=offscreen "$app/palidesk" --self-test >"$root/none.txt" 2>&1 || status=$?
    tail -1 "$root/none.txt"
    if [[ $status != 1 ]] || ! tail -1 "$root/none.txt" \
            | grep -q "^self-test FAILED: No CPU backend could be loaded"; then
        echo "packaging check FAILED: without CPU variants the app exited $status" \
            "instead of 1 with 'No CPU backend could be loaded'" >&2
        cat "$root/none.txt" >&2
        exit 1
    fi
    mv "$root/hidden"/* "$lib/"

    if command -v cc >/dev/null && ! ls "$lib"/libggml-cuda.* >/dev/null 2>&1; then
        # What a CUDA build does on a machine without the NVIDIA driver: its
        # libggml-cuda.so needs libcuda.so.1, which is absent. A stand-in module with that
        # dependency must leave the app starting on its CPU variant, with a notice.
        step "a GPU backend whose driver is absent: CPU with a notice"
        mkdir "$root/stub"
        echo 'int cuInit(unsigned int flags) { return flags ? 1 : 0; }' > "$root/stub/cuda.c"
        cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/stub/libcuda.so.1" "$root/stub/cuda.c"
        echo 'extern int cuInit(unsigned int); void *ggml_backend_init(void) { cuInit(0); return 0; }' \
            > "$root/stub/module.c"
        cc -shared -fPIC -o "$lib/libggml-cuda.so" "$root/stub/module.c" "$root/stub/libcuda.so.1"
        QT_QPA_PLATFORM=offscreen "$app/palidesk" --self-test >"$root/gpu.txt" 2>&1 || {
            cat "$root/gpu.txt" >&2
            echo "packaging check FAILED: a GPU backend without its driver stopped the app" >&2
            exit 1
        }
        grep "^GPU backend:" "$root/gpu.txt" \
            || { echo "packaging check FAILED: no GPU backend notice" >&2; exit 1; }
        rm "$lib/libggml-cuda.so"
    fi
else
    echo "(no CPU variant files: llama.cpp's CPU backend is linked in)"
fi

bundle_mb=$(du -sm dist/palidesk | cut -f1)
tarball=$(ls -t dist/palidesk-*.tar.gz | head -1)
echo "packaging check passed in $((SECONDS - started)) s: bundle ${bundle_mb} MiB," \
    "$(basename "$deb") $(du -m "$deb" | cut -f1) MiB," \
    "$(basename "$tarball") $(du -m "$tarball" | cut -f1) MiB"
