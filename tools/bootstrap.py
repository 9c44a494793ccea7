#!/usr/bin/env python3
"""Set up PaliDesk on a fresh machine: a virtual environment, a llama.cpp build that
suits this CPU, and the project itself.

Standard library only, because it runs before anything is installed. It runs under any
``python3`` from 3.8 on and makes the venv with the newest supported Python it finds
(3.11, 3.12 or 3.13: ``python3.X`` on PATH, pyenv's versions, or the one running it), or
says which to install. ``--python 3.12`` (or ``PALIDESK_PYTHON``) picks one; an existing
``.venv`` keeps its Python.

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
import shutil
import subprocess
import sys
from pathlib import Path

LLAMA_VERSION = "0.3.36"
ROOT = Path(__file__).resolve().parent.parent
MARKER_NAME = "palidesk-llama-build.json"
# Keep in step with pyproject's requires-python. Newest first: it is the one picked.
SUPPORTED = ("3.13", "3.12", "3.11")
_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"

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


def python_version(python: str) -> str | None:
    """``"3.12"`` for an interpreter that runs; None for one that does not (a pyenv shim
    of a version that is not enabled exits non-zero, a broken link cannot start)."""
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def candidate_pythons() -> list[str]:
    """Interpreters worth probing, most specific first."""
    names = [f"python{v}" for v in SUPPORTED] + ["python3", "python"]
    found = [path for path in map(shutil.which, names) if path]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for version in SUPPORTED:  # pyenv installs that its shims do not enable
        found += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}*/bin/python{version}"))
    return [sys.executable, *found]


def find_pythons() -> dict[str, str]:
    """Every Python version found -> one interpreter of it (the first found)."""
    versions: dict[str, str] = {}
    for python in candidate_pythons():
        version = python_version(python)
        if version and version not in versions:
            versions[version] = python
    return versions


def _supported_text() -> str:
    oldest_first = list(reversed(SUPPORTED))
    return f"{', '.join(oldest_first[:-1])} or {oldest_first[-1]}"


def install_hint(found: dict[str, str]) -> str:
    have = ", ".join(f"{v} ({p})" for v, p in sorted(found.items())) or "none"
    return (
        f"PaliDesk needs Python {_supported_text()}; found: {have}.\n"
        "Install one, e.g. Ubuntu/Debian: sudo apt install python3.12 python3.12-venv; "
        "Fedora: sudo dnf install python3.12; macOS: brew install python@3.12; "
        "Windows: python.org's 3.12 installer. Then run this again."
    )


def choose_python(requested: str | None, venv_dir: Path) -> tuple[str, str]:
    """(interpreter, version) for the venv; raises SystemExit with advice when none fits."""
    if requested and requested[0].isdigit() and requested not in SUPPORTED:
        raise SystemExit(f"--python {requested}: PaliDesk needs Python {_supported_text()}.")
    existing = venv_python(venv_dir)
    if existing.exists():
        have = python_version(str(existing))
        if have in SUPPORTED and requested in (None, have):
            return str(existing), have
        if requested is None or have is None:
            raise SystemExit(
                f"{venv_dir} was made with Python {have or '(broken)'}, which PaliDesk does "
                f"not support. Remove it (rm -rf {venv_dir}) and run this again.")
        raise SystemExit(
            f"{venv_dir} uses Python {have}, not {requested}. Remove it "
            f"(rm -rf {venv_dir}) or pass --venv DIR for a second environment.")
    if requested and not requested[0].isdigit():  # a path to an interpreter
        have = python_version(requested)
        if have not in SUPPORTED:
            raise SystemExit(f"{requested} is Python {have or '(does not start)'}.\n"
                             + install_hint({have: requested} if have else {}))
        return requested, have
    found = find_pythons()
    wanted = [requested] if requested else list(SUPPORTED)
    for version in wanted:
        if version in found:
            return found[version], version
    raise SystemExit(install_hint(found))


def ensure_venv(venv_dir: Path, requested: str | None) -> Path:
    python = venv_python(venv_dir)
    base, version = choose_python(requested, venv_dir)
    if python.exists():
        print(f"Using {venv_dir} (Python {version}).", flush=True)
        return python
    print(f"Creating virtual environment in {venv_dir} with Python {version} ({base})",
          flush=True)
    made = subprocess.run([base, "-m", "venv", str(venv_dir)])
    if made.returncode != 0 or not python.exists():
        raise SystemExit(
            f"Python {version} could not make a virtual environment. On Debian/Ubuntu "
            f"install its venv module (sudo apt install python{version}-venv), remove "
            f"{venv_dir} and run this again.")
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
    parser.add_argument(
        "--python", default=os.environ.get("PALIDESK_PYTHON") or None,
        help=f"the venv's Python: a version ({_supported_text()}) or a path; "
             "default: the newest found (env PALIDESK_PYTHON)")
    args = parser.parse_args()
    try:
        python = ensure_venv(args.venv, args.python)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    ensure_llama(python, args.venv)
    extras = [name for name, on in (("dev", args.dev), ("reference", args.reference)) if on]
    target = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
    run([str(python), "-m", "pip", "install", "--quiet", "-e", target])
    print("PaliDesk is set up.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
