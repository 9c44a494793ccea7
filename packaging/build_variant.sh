#!/usr/bin/env bash
# Build PaliDesk's installers with one llama.cpp build (Linux and macOS; Windows:
# packaging/windows/build.ps1):
#
#     packaging/build_variant.sh cpu|cuda|metal|vulkan
#
# 1. a venv of its own, build/venv-<variant> (Python 3.11; PYTHON=... to choose one);
# 2. llama-cpp-python 0.3.36 built with the variant's CMAKE_ARGS into a wheel folder of its
#    own under ~/.cache/palidesk/wheels (pip's cache ignores CMAKE_ARGS, so a cached CPU
#    wheel would silently be reused), installed with PaliDesk and PyInstaller;
# 3. the bundle (packaging/build_bundle.py) and its self-test;
# 4. the platform's installers, named with the variant: Linux
#    dist/palidesk_<version>_<arch>-<variant>.deb and .tar.gz, macOS
#    dist/PaliDesk-<version>-macos-<arch>-<variant>.dmg.
#
# CPU flags are portable (AVX2/FMA/F16C, GGML_NATIVE=OFF): an installer runs on CPUs other
# than the build machine's, so bootstrap.py's per-machine AVX-512 choice is not used here.
# PALIDESK_EXTRA_CMAKE_ARGS adds flags, e.g. "-DCMAKE_CUDA_ARCHITECTURES=75;86;89".
# Needs: cuda = the CUDA toolkit (nvcc); vulkan = the Vulkan SDK / libvulkan-dev + glslc;
# metal = Xcode command-line tools on Apple silicon.
set -euo pipefail
VARIANT=${1:-}
cd "$(dirname "$0")/.."
LLAMA_VERSION=0.3.36
PYINSTALLER_VERSION=6.22.3
PYTHON=${PYTHON:-python3.11}

case "$(uname -m)" in
    x86_64|amd64) CPU_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" ;;
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
# Same folder scheme as tools/bootstrap.py: its "avx2" wheel is the x86 CPU variant's.
CACHE_NAME=$VARIANT
[[ $VARIANT == cpu && $ARGS == "$CPU_ARGS" && $CPU_ARGS == *AVX2* ]] && CACHE_NAME=avx2
WHEELS=$HOME/.cache/palidesk/wheels/llama-cpp-python-$LLAMA_VERSION-$CACHE_NAME-$DIGEST
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION ($VARIANT): CMAKE_ARGS=$ARGS"
    CMAKE_ARGS=$ARGS "$PY" -m pip wheel --no-deps --no-cache-dir -w "$WHEELS" \
        "llama-cpp-python==$LLAMA_VERSION"
fi
"$PY" -m pip install --quiet --force-reinstall "$(ls "$WHEELS"/llama_cpp_python-*.whl | tail -1)"
"$PY" -m pip install --quiet . "pyinstaller==$PYINSTALLER_VERSION"

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
