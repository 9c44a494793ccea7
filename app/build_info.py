"""Which llama.cpp build this PaliDesk runs: CPU, CUDA, Metal or Vulkan.

A frozen bundle carries ``palidesk-build.json`` (written by ``packaging/build_bundle.py``);
a source checkout has ``.venv/palidesk-llama-build.json`` (written by
``tools/bootstrap.py``). Neither present means "unknown". Qt-free, never raises.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

BUNDLE_FILE = "palidesk-build.json"
VENV_FILE = "palidesk-llama-build.json"
GPU_VARIANTS = ("cuda", "metal", "vulkan")
# bootstrap.py's variant names are CPU instruction sets; all of them are CPU builds.
_CPU_FLAVOURS = ("avx512", "avx2", "generic", "default")
DOWNLOAD_HINT = "the installer whose file name ends in -cuda"


@dataclass(frozen=True)
class BuildInfo:
    """``variant``: cpu, cuda, metal, vulkan, custom or unknown; ``detail``: what built it."""

    variant: str
    cmake_args: tuple[str, ...] = ()
    frozen: bool = False
    llama_cpp_python: str = ""
    source: str = ""  # the file it was read from, "" when none was found

    def describe(self) -> str:
        """One line, e.g. "cpu build (frozen bundle), llama-cpp-python 0.3.36"."""
        where = "frozen bundle" if self.frozen else "source checkout"
        text = f"{self.variant} build ({where})"
        if self.llama_cpp_python:
            text += f", llama-cpp-python {self.llama_cpp_python}"
        if self.cmake_args:
            text += f", CMAKE_ARGS: {' '.join(self.cmake_args)}"
        return text


def variant_of(cmake_args: list[str] | tuple[str, ...], named: str = "") -> str:
    """The user-facing variant for a set of CMake arguments (GPU flags win)."""
    joined = " ".join(cmake_args).upper()
    for variant in GPU_VARIANTS:
        if f"-DGGML_{variant.upper()}=ON" in joined:
            return variant
    if named in _CPU_FLAVOURS:
        return "cpu"
    return named or "unknown"


def read_build_info(frozen_root: Path | None = None, venv_dir: Path | None = None) -> BuildInfo:
    """Read the build record of the running PaliDesk (arguments override for tests)."""
    meipass = getattr(sys, "_MEIPASS", None)
    if frozen_root is None and meipass:
        frozen_root = Path(meipass)
    if frozen_root is not None:
        return _from_file(frozen_root / BUNDLE_FILE, frozen=True)
    if venv_dir is None:
        venv_dir = Path(sys.prefix)
    return _from_file(venv_dir / VENV_FILE, frozen=False)


def _from_file(path: Path, frozen: bool) -> BuildInfo:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return BuildInfo("unknown", frozen=frozen)
    if not isinstance(data, dict):
        return BuildInfo("unknown", frozen=frozen)
    args = tuple(str(a) for a in data.get("cmake_args") or ())
    return BuildInfo(
        variant=variant_of(args, str(data.get("variant") or "")),
        cmake_args=args,
        frozen=frozen,
        llama_cpp_python=str(data.get("llama_cpp_python") or data.get("version") or ""),
        source=str(path),
    )


def gpu_build_advice(info: BuildInfo | None = None) -> str | None:
    """What to tell a user whose NVIDIA GPU this build cannot use; None when nothing.

    A GPU build whose GPU backend file could not be loaded (no driver) says so first.

    From source, the hardware report's advice (rebuild with CUDA) applies as is; a frozen
    CPU bundle cannot be rebuilt by its user, so it points at the CUDA installer instead.
    """
    from app.hardware import detect

    notice = _gpu_backend_notice()
    if notice:  # a GPU build started without its driver: it runs, on the CPU
        return notice
    advice = detect().advice
    if advice is None:
        return None
    info = info or read_build_info()
    if not info.frozen:
        return advice
    return ("An NVIDIA GPU is present, but this PaliDesk is a CPU-only build "
            f"({info.variant}), so models run on the CPU. A CUDA build of PaliDesk exists: "
            f"install {DOWNLOAD_HINT} to use the GPU.")


def _gpu_backend_notice() -> str | None:
    try:
        from app.engine.llama_library import gpu_backend_notice
    except Exception:  # llama.cpp itself cannot be loaded: the model load will say why
        return None
    return gpu_backend_notice()
