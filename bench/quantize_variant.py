"""Quantize the text model with a different type for the tied token_embd / output matrix.

    .venv/bin/python bench/quantize_variant.py --type Q4_K_M --embd Q4_K

llama.cpp's Q4_K_M stores the tied 257,216 x 2,304 embedding as Q6_K (464 MiB, 28.5 % of
the file), and decode reads all of it every token as the LM head. This writes
``<models>/variants/text-<type>-embd-<embd>.gguf`` (not registered in the manifest) so
``bench/decode_profile.py --text-file`` can measure what another type would save.
Only for measuring speed: the quality cost is not measured here.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

from bench_models import BENCH_MODELS

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import llama_cpp  # noqa: E402

from app.engine.llama_library import ensure_backend  # noqa: E402
from app.models.quantize import FTYPES  # noqa: E402

GGML_TYPES = {"Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "Q8_0": 8, "F16": 1, "Q4_0": 2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=BENCH_MODELS / "pg2-3b-224-gguf")
    parser.add_argument("--type", default="Q4_K_M")
    parser.add_argument("--embd", default="Q4_K", choices=sorted(GGML_TYPES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ensure_backend()
    source = args.models / "text-f16.gguf"
    out = args.models / "variants" / f"text-{args.type.lower()}-embd-{args.embd.lower()}.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[args.type.upper()]
    params.nthread = args.threads
    params.token_embedding_type = GGML_TYPES[args.embd]
    params.output_tensor_type = GGML_TYPES[args.embd]
    start = time.perf_counter()
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(),
                                            ctypes.byref(params))
    print(f"status {status}: {out} ({out.stat().st_size / 1e9:.3f} GB) in "
          f"{time.perf_counter() - start:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
