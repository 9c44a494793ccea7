#!/usr/bin/env python3
"""Set up PaliDesk on a fresh machine: a virtual environment, a llama.cpp build that
suits this CPU, and the project itself.

Standard library only, because it runs before anything is installed.

Why we build llama-cpp-python ourselves: PyPI ships it as source only, and a default
(``-march=native``) build is unsafe on CPUs that advertise AMX inside VMs that do not
allow it (the tile instructions fault with SIGILL). We name the instruction sets
explicitly instead: AVX-512 where the CPU has it (30-40% faster image encode and
prefill), AVX2 otherwise, and never AMX. The wheel is cached per flag set under
``~/.cache/palidesk/wheels`` because pip's own cache ignores ``CMAKE_ARGS``.

Set ``PALIDESK_CMAKE_ARGS`` to build with other flags (e.g. ``-DGGML_CUDA=on``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import venv
from pathlib import Path

LLAMA_VERSION = "0.3.36"
ROOT = Path(__file__).resolve().parent.parent
MARKER_NAME = "palidesk-llama-build.json"

# Common to every x86 build: no host-specific tuning, so the wheel runs on any CPU
# that has the sets we name.
_PORTABLE = ["-DGGML_NATIVE=OFF"]
_AVX2 = ["-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"]
# cpuinfo flag -> CMake option, added only when the CPU has it.
_AVX512_EXTRAS = {
    "avx512vbmi": "-DGGML_AVX512_VBMI=ON",
    "avx512_vnni": "-DGGML_AVX512_VNNI=ON",
    "avx512_bf16": "-DGGML_AVX512_BF16=ON",
}


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def choose_cmake_args() -> tuple[str, list[str]]:
    """Pick (variant name, CMake arguments) for this machine."""
    custom = os.environ.get("PALIDESK_CMAKE_ARGS")
    if custom:
        return "custom", custom.split()
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        # ARM (Apple silicon, Linux aarch64): llama.cpp's defaults are safe there.
        return "default", []
    flags = cpu_flags()
    if {"avx2", "fma", "f16c"} <= flags:
        args = _PORTABLE + _AVX2
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            args = [*args, "-DGGML_AVX512=ON"]
            args += [opt for flag, opt in _AVX512_EXTRAS.items() if flag in flags]
            return "avx512", args
        return "avx2", args
    return "generic", [*_PORTABLE, "-DGGML_AVX2=OFF", "-DGGML_FMA=OFF", "-DGGML_F16C=OFF"]


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def venv_python(venv_dir: Path) -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return venv_dir / sub


def ensure_venv(venv_dir: Path) -> Path:
    python = venv_python(venv_dir)
    if not python.exists():
        print(f"Creating virtual environment in {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
        run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip", "wheel"])
    return python


def installed_build(venv_dir: Path) -> dict[str, object] | None:
    try:
        return json.loads((venv_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def ensure_llama(python: Path, venv_dir: Path) -> None:
    variant, cmake_args = choose_cmake_args()
    wanted = {"version": LLAMA_VERSION, "variant": variant, "cmake_args": cmake_args}
    probe = subprocess.run([str(python), "-c", "import llama_cpp"], capture_output=True)
    if installed_build(venv_dir) == wanted and probe.returncode == 0:
        print(f"llama-cpp-python {LLAMA_VERSION} ({variant} build) is installed.", flush=True)
        return
    digest = hashlib.sha256(" ".join(cmake_args).encode()).hexdigest()[:8]
    cache = Path.home() / ".cache" / "palidesk" / "wheels"
    wheel_dir = cache / f"llama-cpp-python-{LLAMA_VERSION}-{variant}-{digest}"
    wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
    if not wheels:
        print(
            f"Building llama-cpp-python {LLAMA_VERSION} for this CPU ({variant}: "
            f"{' '.join(cmake_args) or 'defaults'}). This takes about 7 minutes on 2 cores "
            "and happens once.",
            flush=True,
        )
        env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args))
        run(
            [str(python), "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
             "-w", str(wheel_dir), f"llama-cpp-python=={LLAMA_VERSION}"],
            env=env,
        )
        wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
    # llama-cpp-python's own dependencies (numpy, jinja2, diskcache, typing-extensions)
    # come with it; --force-reinstall swaps a build made with other flags.
    run([str(python), "-m", "pip", "install", "--quiet", "--force-reinstall", str(wheels[-1])])
    (venv_dir / MARKER_NAME).write_text(json.dumps(wanted, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    parser.add_argument(
        "--reference", action="store_true",
        help="also install torch and transformers (only to regenerate reference outputs)",
    )
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv")
    args = parser.parse_args()
    if sys.version_info[:2] != (3, 11):
        print(f"PaliDesk needs Python 3.11; this is {platform.python_version()}.")
        return 1
    python = ensure_venv(args.venv)
    ensure_llama(python, args.venv)
    extras = [name for name, on in (("dev", args.dev), ("reference", args.reference)) if on]
    target = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
    run([str(python), "-m", "pip", "install", "--quiet", "-e", target])
    print("PaliDesk is set up.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
