"""PyInstaller hook for llama-cpp-python (none exists upstream).

``llama_cpp`` opens its llama.cpp libraries with ctypes from ``<package>/lib`` (see
``llama_cpp/_ctypes_extensions.py``), so import analysis never sees them. They are
collected into ``llama_cpp/lib`` inside the bundle, where the frozen package looks.

Only the names something opens are kept: the plain name ctypes loads (``libllama.so``,
``libmtmd.dylib``, ``llama.dll``) and the one-number sonames the libraries link against
(``libggml.so.0``, ``libggml.0.dylib``). A wheel stores symlinks as copies, so the fully
versioned third copy (``libggml.so.0.25.3``) is dropped: about a third of the size.
A library that has no shorter name is kept whatever its name (never drop the only copy).

A release build (``GGML_BACKEND_DL``) adds backend modules that ``libggml`` opens by
itself at run time: one ``libggml-cpu-<level>.so`` per CPU instruction-set level
(``haswell``, ``icelake``, ``armv8.2_1``, ...) and the GPU backend (``libggml-cuda.so``).
They have no versioned copies and are all kept: which one runs is decided on the user's
CPU (``app/engine/cpu_backends.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

from PyInstaller.utils.hooks import get_package_paths

_SHARED = re.compile(
    r"^(?P<stem>[^.]+)"  # libggml-cpu
    r"(?:"
    r"\.so(?P<so>(?:\.\d+)*)"  # .so, .so.0, .so.0.25.3
    r"|(?P<dy>(?:\.\d+)*)\.dylib"  # .dylib, .0.dylib, .0.25.3.dylib
    r"|\.dll"
    r")$"
)
# Backend modules: never versioned; names may hold dots (libggml-cpu-armv8.2_1.so).
_MODULE = re.compile(r"^(?:lib)?ggml-[\w.-]+\.(?:so|dll|dylib)$")


def llama_libraries(lib_dir: Path) -> list[Path]:
    """The shared libraries of ``lib_dir`` worth shipping (see the module docstring)."""
    by_stem: dict[str, list[tuple[int, Path]]] = {}
    modules = []
    for path in sorted(lib_dir.iterdir()):
        if not path.is_file():
            continue
        match = _SHARED.match(path.name)
        if not match:
            if _MODULE.match(path.name):
                modules.append(path)
            continue
        version = match.group("so") or match.group("dy") or ""
        by_stem.setdefault(match.group("stem"), []).append((version.count("."), path))
    chosen = []
    for versions in by_stem.values():
        short = [path for depth, path in versions if depth <= 1]
        chosen += short or [min(versions)[1]]
    return sorted(chosen + modules)


_, _package_dir = get_package_paths("llama_cpp")
binaries = [(str(path), "llama_cpp/lib") for path in llama_libraries(Path(_package_dir) / "lib")]
# The server, its FastAPI stack and the example chat UIs are never used by PaliDesk.
excludedimports = ["llama_cpp.server", "uvicorn", "fastapi", "sse_starlette",
                   "starlette_context", "pydantic_settings"]
