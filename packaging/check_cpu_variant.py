#!/usr/bin/env python3
"""Check which llama.cpp CPU variant a release bundle chose (used by packaging/ci_check.sh).

    check_cpu_variant.py --lib-dir BUNDLE/_internal/llama_cpp/lib --output selftest.txt \\
        [--exclude NAME ...]

Reads the "CPU backend: <name> (...)" line that ``--self-test`` or ``palidesk hardware``
printed and compares it with the variant this machine should get, worked out here
independently of the app: from /proc/cpuinfo (not cpuid) and the variant files present,
the one with the most instruction sets this CPU has (weighted as ggml's own
``ggml_backend_score``), never an AMX one, and none of the ``--exclude``d (files the check
removed to test the fallback). Prints the verdict; exit 0 when they agree. Stdlib only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_HASWELL = {"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"}
_AVX512 = _HASWELL | {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"}
# llama.cpp's x86 variants (ggml/src/CMakeLists.txt) as /proc/cpuinfo flags.
REQUIRES = {
    "x64": set(),
    "sse42": {"sse4_2"},
    "sandybridge": {"sse4_2", "avx"},
    "ivybridge": {"sse4_2", "avx", "f16c"},
    "piledriver": {"sse4_2", "avx", "f16c", "fma"},
    "haswell": _HASWELL,
    "skylakex": _AVX512,
    "cannonlake": _AVX512 | {"avx512vbmi"},
    "cascadelake": _AVX512 | {"avx512_vnni"},
    "icelake": _AVX512 | {"avx512vbmi", "avx512_vnni"},
    "cooperlake": _AVX512 | {"avx512_vnni", "avx512_bf16"},
    "zen4": _AVX512 | {"avx512vbmi", "avx512_vnni", "avx512_bf16"},
    "alderlake": _HASWELL | {"avx_vnni"},
    "sapphirerapids": _AVX512 | {"avx512vbmi", "avx512_vnni", "avx512_bf16",
                                 "amx_tile", "amx_int8"},
}
# ggml_backend_cpu_x86_score's weights (ggml/src/ggml-cpu/arch/x86/cpu-feats.cpp).
_WEIGHTS = {"fma": 1, "f16c": 2, "sse4_2": 4, "bmi2": 8, "avx": 16, "avx2": 32,
            "avx_vnni": 64, "avx512f": 128, "avx512vbmi": 256, "avx512_bf16": 512,
            "avx512_vnni": 1024, "amx_int8": 2048}
_LINE = re.compile(r"^cpu backend:\s+(\S+)", re.IGNORECASE | re.MULTILINE)


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def expected_variant(present: set[str], flags: set[str], exclude: set[str]) -> str | None:
    usable = [name for name in present
              if name in REQUIRES and name not in exclude and "amx_int8" not in REQUIRES[name]
              and REQUIRES[name] <= flags]
    return max(usable, key=lambda n: sum(_WEIGHTS.get(f, 0) for f in REQUIRES[n]), default=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib-dir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="what the app printed")
    parser.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args()

    present = {m.group(1) for p in args.lib_dir.iterdir()
               if (m := re.match(r"^libggml-cpu-(.+)\.so$", p.name))}
    unknown = sorted(present - set(REQUIRES))
    if unknown:
        print(f"CPU variant check: unknown variant files {unknown}; update REQUIRES")
        return 1
    match = _LINE.search(args.output.read_text())
    if not match:
        print(f"CPU variant check FAILED: no 'CPU backend:' line in {args.output}")
        return 1
    chosen = match.group(1)
    expected = expected_variant(present, cpu_flags(), set(args.exclude))
    verdict = "ok" if chosen == expected else "FAILED"
    print(f"CPU variant check {verdict}: the app chose {chosen}, expected {expected} "
          f"({len(present)} variant files, excluded: {', '.join(args.exclude) or 'none'})")
    return 0 if chosen == expected else 1


if __name__ == "__main__":
    sys.exit(main())
