#!/usr/bin/env bash
# Build PaliDesk's installers with one llama.cpp build (Linux and macOS; Windows:
# packaging/windows/build.ps1):
#
#     packaging/build_variant.sh cpu|cuda|metal|vulkan
#
# 1. a venv of its own, build/venv-<variant> (Python 3.11, else python3; PYTHON=... to
#    choose one);
# 2. llama-cpp-python 0.3.36 built with the variant's CMAKE_ARGS into a wheel folder of its
#    own under ~/.cache/palidesk/wheels (pip's cache ignores CMAKE_ARGS, so a cached CPU
#    wheel would silently be reused), installed with PaliDesk and PyInstaller;
# 3. the bundle (packaging/build_bundle.py) and its self-test;
# 4. the platform's installers, named with the variant: Linux
#    dist/palidesk_<version>_<arch>-<variant>.deb and .tar.gz, macOS
#    dist/PaliDesk-<version>-macos-<arch>-<variant>.dmg.
#
# x86-64 CPU code is built once per instruction-set level (llama.cpp's
# GGML_CPU_ALL_VARIANTS: x64/SSE2 up to AVX-512 and AMX, one libggml-cpu-<level>.so each)
# and loaded at run time (GGML_BACKEND_DL), where PaliDesk picks the best one the user's
# CPU runs (app/engine/cpu_backends.py): one -cpu installer for every x86-64 CPU, as fast
# as a build for the machine. The backend modules install next to libllama
# (CMAKE_INSTALL_BINDIR), where the loader and the PyInstaller hook look. GPU backends
# (CUDA, Vulkan) become modules too, so a GPU build starts without the driver.
# Compiling ~14 CPU variants takes ~25 min on 2 cores, once: the wheel is cached.
# PALIDESK_EXTRA_CMAKE_ARGS adds flags, e.g. "-DCMAKE_CUDA_ARCHITECTURES=75;86;89".
# Needs: cuda = the CUDA toolkit (nvcc); vulkan = the Vulkan SDK / libvulkan-dev + glslc;
# metal = Xcode command-line tools on Apple silicon.
set -euo pipefail
VARIANT=${1:-}
cd "$(dirname "$0")/.."
LLAMA_VERSION=0.3.36
PYINSTALLER_VERSION=6.22.3
# The release bundles stay on one Python (3.11) unless PYTHON says otherwise (3.11-3.13).
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3.11
    "$PYTHON" -c '' 2>/dev/null || PYTHON=python3
fi

case "$(uname -m)" in
    x86_64|amd64) CPU_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_INSTALL_BINDIR=llama_cpp/lib" ;;
    *) CPU_ARGS="-DGGML_NATIVE=OFF" ;;
esac
case "$VARIANT" in
    cpu) ARGS=$CPU_ARGS
         # llama.cpp turns Metal on by default on macOS; the CPU variant is CPU only.
         [[ $(uname) == Darwin ]] && ARGS="$ARGS -DGGML_METAL=OFF" ;;
    cuda) ARGS="$CPU_ARGS -DGGML_CUDA=on" ;;
    metal) ARGS="-DGGML_METAL=on" ;;
    vulkan) ARGS="$CPU_ARGS -DGGML_VULKAN=on" ;;
    *) echo "usage: $0 cpu|cuda|metal|vulkan" >&2; exit 2 ;;
esac
ARGS=$(echo "$ARGS ${PALIDESK_EXTRA_CMAKE_ARGS:-}" | xargs)

VENV=build/venv-$VARIANT
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
"$PY" -m pip install --quiet --upgrade pip wheel

DIGEST=$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:8])' "$ARGS")
# Same folder scheme as tools/bootstrap.py (variant and a hash of the flags), so CI on one
# machine reuses the wheel; built into a temporary folder first, so an interrupted build
# never leaves a folder that looks done.
WHEELS=$HOME/.cache/palidesk/wheels/llama-cpp-python-$LLAMA_VERSION-$VARIANT-$DIGEST
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION ($VARIANT): CMAKE_ARGS=$ARGS"
    rm -rf "$WHEELS.partial"
    CMAKE_ARGS=$ARGS nice -n 5 "$PY" -m pip wheel --no-deps --no-cache-dir -w "$WHEELS.partial" \
        "llama-cpp-python==$LLAMA_VERSION"
    mkdir -p "$WHEELS" && mv "$WHEELS.partial"/llama_cpp_python-*.whl "$WHEELS"/ && rm -rf "$WHEELS.partial"
fi
WHEEL=$(ls "$WHEELS"/llama_cpp_python-*.whl | tail -1)
if [[ $(cat "$VENV/palidesk-llama-wheel" 2>/dev/null) != "$WHEEL" ]]; then  # once per wheel
    "$PY" -m pip install --quiet --force-reinstall "$WHEEL"
    echo "$WHEEL" > "$VENV/palidesk-llama-wheel"
fi
# The server extra is part of the installers (`palidesk serve`, Tools › Local Server…).
"$PY" -m pip install --quiet ".[server]" "pyinstaller==$PYINSTALLER_VERSION"

"$PY" packaging/build_bundle.py --clean --variant "$VARIANT" --cmake-args="$ARGS"
case "$(uname)" in
    Linux)
        QT_QPA_PLATFORM=offscreen dist/palidesk/palidesk --self-test
        bash packaging/linux/build_deb.sh ;;
    Darwin)
        QT_QPA_PLATFORM=offscreen dist/PaliDesk.app/Contents/MacOS/PaliDesk --self-test
        PY=$PY bash packaging/macos/build.sh --dmg-only ;;
    *) echo "on Windows use packaging/windows/build.ps1" >&2; exit 2 ;;
esac
