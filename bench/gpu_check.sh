#!/usr/bin/env bash
# One prepared run on a bare NVIDIA GPU machine (Python 3.12 is fine, nvcc on PATH,
# 16 cores): build llama-cpp-python for this GPU, make the full-size random 3B, convert
# and quantize it, then check the fit estimate against NVML and measure the speed.
# Target: under 10 minutes (build ~4-6 min for one CUDA architecture on 16 cores).
#
#   bash bench/gpu_check.sh [WORK_DIR]          # default WORK_DIR: /tmp/palidesk-gpu
#
# Offline machines: set WHEELHOUSE=<folder> holding the wheels pip needs for this Python
# and the llama-cpp-python 0.3.36 sdist (prepare it elsewhere with
#   pip download --python-version 3.12 --only-binary :all: -d WH numpy gguf sentencepiece \
#       safetensors pillow platformdirs nvidia-ml-py huggingface_hub pyyaml tqdm \
#       scikit-build-core cmake ninja typing-extensions diskcache jinja2 markupsafe
#   pip download --no-binary :all: --no-deps -d WH llama-cpp-python==0.3.36 ).
# Untested on a GPU so far: no GPU was available where PaliDesk was developed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-/tmp/palidesk-gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$WORK"
start=$(date +%s)
step() { echo "== $(( $(date +%s) - start )) s: $*"; }

command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver"; exit 2; }
command -v nvcc >/dev/null || { echo "nvcc not found: install the CUDA toolkit"; exit 2; }
# compute_cap "9.0" -> CMake architecture "90": build for this GPU only (minutes, not an hour).
ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')"
step "GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1), arch $ARCH"

PIP_SOURCE=()
if [[ -n "${WHEELHOUSE:-}" ]]; then PIP_SOURCE=(--no-index --find-links "$WHEELHOUSE"); fi
VENV="$WORK/venv"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
step "installing the Python packages the engine needs"
"$VPY" -m pip install --quiet "${PIP_SOURCE[@]}" numpy "gguf>=0.17,<0.20" \
    "sentencepiece>=0.2,<0.3" "safetensors>=0.4,<0.9" pillow platformdirs \
    "nvidia-ml-py>=12,<14" "huggingface_hub>=2.4,<3" pyyaml tqdm scikit-build-core cmake ninja

if ! "$VPY" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)" 2>/dev/null; then
    step "building llama-cpp-python 0.3.36 with CUDA for sm_$ARCH (16 jobs)"
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DGGML_NATIVE=ON" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$VPY" -m pip install --no-build-isolation --no-cache-dir "${PIP_SOURCE[@]}" \
        "llama-cpp-python==0.3.36"
fi
"$VPY" -c "import llama_cpp; assert llama_cpp.llama_supports_gpu_offload(), 'no GPU offload in this build'"

HF="$WORK/pg2-3b-224-random"
GGUF="$WORK/pg2-3b-224-gguf"
cd "$ROOT"
if [[ ! -f "$HF/config.json" ]]; then
    step "making the full-size random 3B checkpoint"
    "$VPY" bench/make_fullsize_random.py --out "$HF"
fi
if [[ ! -f "$GGUF/text-q4_k_m.gguf" ]]; then
    step "converting and quantizing"
    "$VPY" -m app.cli.main convert "$HF" --out "$GGUF" --outtype f16
    for q in Q8_0 Q4_K_M; do "$VPY" -m app.cli.main quantize "$GGUF" --type "$q"; done
fi
step "fit estimate vs NVML, and speed on the GPU"
"$VPY" bench/gpu_fit_check.py --folder "$GGUF" --quants F16,Q8_0,Q4_K_M
"$VPY" -m app.cli.main fit "$GGUF"
step "done"
