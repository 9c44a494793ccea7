"""Load llama.cpp's backends when the build keeps them in separate files.

A release build (``-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON``) ships one
``libggml-cpu-<level>.so`` per x86 instruction-set level and, for GPU builds, a
``libggml-cuda.so``/``libggml-vulkan.so`` next to ``libllama``. Nothing is registered until
someone loads them, and llama-cpp-python does not (its issue #2069: "no backends are
loaded"), so :func:`load_backends` does it through ctypes before the first model load.

It does not simply call ``ggml_backend_load_all_from_path``, because that would pick the
AMX variant (``sapphirerapids``) on CPUs that advertise AMX: AMX only pays through
llama.cpp's extra buffer types, which PaliDesk turns off on AVX-512 CPUs, and some VMs
advertise AMX but fault (SIGILL) on it. So it scores every variant the way ggml does
(each file's ``ggml_backend_score``), skips AMX ones, and loads the best one that loads,
falling back to the next best. A build with the CPU backend linked in (``tools/bootstrap.py``'s)
has no variant files and needs none of this.

``PALIDESK_CPU_VARIANT=<name>`` forces one variant (for benchmarks and as an escape hatch).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import EngineError

log = logging.getLogger("palidesk.llama")

FORCE_ENV = "PALIDESK_CPU_VARIANT"
# llama.cpp's x86 variants (ggml/src/CMakeLists.txt) in plain words; others show their name.
VARIANT_LABELS = {
    "x64": "x86-64 baseline, SSE2",
    "sse42": "SSE4.2",
    "sandybridge": "AVX",
    "ivybridge": "AVX, F16C",
    "piledriver": "AVX, FMA",
    "haswell": "AVX2",
    "skylakex": "AVX-512",
    "cannonlake": "AVX-512 VBMI",
    "cascadelake": "AVX-512 VNNI",
    "icelake": "AVX-512 VBMI, VNNI",
    "cooperlake": "AVX-512 VNNI, BF16",
    "zen4": "AVX-512 VBMI, VNNI, BF16",
    "alderlake": "AVX2, AVX-VNNI",
    "sapphirerapids": "AVX-512, AMX",
}
AMX_VARIANTS = frozenset({"sapphirerapids"})
GPU_BACKENDS = ("cuda", "hip", "musa", "vulkan", "sycl", "opencl", "metal", "cann")

_CPU_FILE = re.compile(r"^(?:lib)?ggml-cpu-(?P<name>.+)\.(?:so|dll|dylib)$")
_BACKEND_FILE = re.compile(r"^(?:lib)?ggml-(?P<name>[a-z0-9]+)\.(?:so|dll|dylib)$")


class NoCpuBackendError(EngineError):
    """None of the build's CPU backend files could be loaded."""


@dataclass(frozen=True)
class Candidate:
    name: str
    path: Path
    score: int  # ggml_backend_score(): 0 = this CPU lacks what the file was built for
    problem: str = ""  # why it cannot even be opened ("" when it can)


@dataclass(frozen=True)
class BackendState:
    """What was loaded. ``dynamic`` is False for a build with the CPU backend linked in."""

    dynamic: bool
    cpu_variant: str | None = None
    gpu_loaded: tuple[str, ...] = ()
    gpu_missing: tuple[str, ...] = ()  # "cuda: libcuda.so.1: cannot open shared object file"
    skipped: tuple[str, ...] = field(default=())  # variants passed over, with the reason

    def cpu_description(self) -> str:
        """E.g. "zen4 (AVX-512 VBMI, VNNI, BF16)", or the linked-in backend's note."""
        if not self.dynamic:
            return "built in (one instruction set, chosen when llama.cpp was built)"
        name = self.cpu_variant or "none"
        label = VARIANT_LABELS.get(name)
        return f"{name} ({label})" if label else name

    def gpu_notice(self) -> str | None:
        """Plain words for a GPU build that starts without its driver; None otherwise."""
        if not self.gpu_missing or self.gpu_loaded:
            return None
        names = ", ".join(item.split(":", 1)[0].upper() for item in self.gpu_missing)
        return (f"This PaliDesk is a {names} build, but the {names} backend could not be "
                "loaded (is the GPU driver installed?), so models run on the CPU.")


def library_files(lib_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(CPU variant name -> file, GPU backend name -> file) in llama.cpp's library folder."""
    cpu: dict[str, Path] = {}
    gpu: dict[str, Path] = {}
    try:
        entries = sorted(lib_dir.iterdir())
    except OSError:
        return cpu, gpu
    for path in entries:
        if match := _CPU_FILE.match(path.name):
            cpu[match.group("name")] = path
        elif (match := _BACKEND_FILE.match(path.name)) and match.group("name") in GPU_BACKENDS:
            gpu[match.group("name")] = path
    return cpu, gpu


def choose_cpu_variant(
    candidates: Iterable[Candidate], load: Callable[[Path], bool], forced: str | None = None,
) -> tuple[str, list[str]]:
    """Load the best usable variant; returns (its name, what was skipped and why).

    Best = highest score among the ones this CPU supports, AMX variants left out; a file
    that fails to load gives way to the next best. ``forced`` names the only one to try.
    Raises NoCpuBackendError when none loads.
    """
    skipped: list[str] = []
    order: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: c.score, reverse=True):
        if forced and candidate.name != forced:
            continue
        if candidate.problem:
            skipped.append(f"{candidate.name}: cannot be opened ({candidate.problem})")
        elif candidate.score <= 0:
            skipped.append(f"{candidate.name}: this CPU lacks its instructions")
        elif candidate.name in AMX_VARIANTS and not forced:
            skipped.append(f"{candidate.name}: uses AMX, which PaliDesk leaves off")
        else:
            order.append(candidate)
    for candidate in order:
        if load(candidate.path):
            return candidate.name, skipped
        skipped.append(f"{candidate.name}: llama.cpp could not load it")
    wanted = f" {forced!r} ({FORCE_ENV})" if forced else ""
    missing = f"no libggml-cpu-{forced} file" if forced else "no libggml-cpu-* files"
    detail = "; ".join(skipped) or missing
    raise NoCpuBackendError(
        f"No CPU backend{wanted} could be loaded, so llama.cpp cannot run: {detail}. "
        "Reinstall PaliDesk; if it persists, report it with the output of "
        "`palidesk --self-test`.")


def _close(handle: int) -> None:
    import _ctypes

    if sys.platform == "win32":
        _ctypes.FreeLibrary(handle)  # type: ignore[attr-defined]
    else:
        _ctypes.dlclose(handle)  # type: ignore[attr-defined]


def _open(path: Path) -> ctypes.CDLL:
    """dlopen ``path``; an OSError carries the loader's own reason. (In the frozen app
    PyInstaller's ctypes hook would replace it by "most likely not found when the
    application was frozen", which hides e.g. a missing libcuda.so.1.)"""
    if sys.platform == "win32":
        return ctypes.CDLL(str(path))
    import _ctypes

    handle = _ctypes.dlopen(str(path), ctypes.DEFAULT_MODE)  # type: ignore[attr-defined]
    return ctypes.CDLL(str(path), handle=handle)


def score_file(name: str, path: Path) -> Candidate:
    """Open a variant file just to ask ``ggml_backend_score()``, as ggml's own loader does."""
    try:
        lib = _open(path)
    except OSError as exc:
        return Candidate(name, path, 0, problem=str(exc) or "dlopen failed")
    try:
        score_fn = lib.ggml_backend_score
    except AttributeError:
        score = 0
        problem = "no ggml_backend_score"
    else:
        score_fn.restype = ctypes.c_int
        score_fn.argtypes = []
        score, problem = int(score_fn()), ""
    _close(lib._handle)
    return Candidate(name, path, score, problem)


def _ggml(lib_dir: Path) -> ctypes.CDLL:
    names = {"win32": "ggml.dll", "darwin": "libggml.dylib"}
    lib = ctypes.CDLL(str(lib_dir / names.get(sys.platform, "libggml.so")))
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    return lib


def registered(ggml: ctypes.CDLL) -> list[str]:
    """Names of the backends registered so far ("CPU", "CUDA", ...)."""
    return [ggml.ggml_backend_reg_name(ggml.ggml_backend_reg_get(i)).decode()
            for i in range(ggml.ggml_backend_reg_count())]


def load_backends(lib_dir: Path) -> BackendState:
    """Register the GPU backend (if the build has one and it loads) and the best CPU variant."""
    cpu_files, gpu_files = library_files(lib_dir)
    try:
        ggml = _ggml(lib_dir)
    except (OSError, AttributeError) as exc:  # no libggml beside libllama (another layout)
        if not cpu_files:
            return BackendState(dynamic=False)  # nothing to load anyway
        raise NoCpuBackendError(f"llama.cpp's libggml could not be opened in {lib_dir}: "
                                f"{exc}. Reinstall PaliDesk.") from exc
    if "CPU" in registered(ggml):
        # Linked in (no variant files), or loaded already by an earlier call.
        return BackendState(dynamic=bool(cpu_files),
                            cpu_variant="(loaded before)" if cpu_files else None)

    gpu_loaded, gpu_missing = [], []
    for name, path in gpu_files.items():
        # Opening it first gives the loader's reason in words (e.g. libcuda.so.1 is absent
        # on a machine without the NVIDIA driver); ggml would only log it.
        try:
            _close(_open(path)._handle)
        except OSError as exc:
            gpu_missing.append(f"{name}: {exc}")
            continue
        if ggml.ggml_backend_load(str(path).encode()):
            gpu_loaded.append(name)
        else:
            gpu_missing.append(f"{name}: llama.cpp could not initialise it")

    def load(path: Path) -> bool:
        return bool(ggml.ggml_backend_load(str(path).encode()))

    forced = os.environ.get(FORCE_ENV) or None
    candidates = [score_file(name, path) for name, path in cpu_files.items()]
    chosen, skipped = choose_cpu_variant(candidates, load, forced)
    state = BackendState(True, chosen, tuple(gpu_loaded), tuple(gpu_missing), tuple(skipped))
    log.info("llama.cpp CPU backend: %s; GPU: %s", state.cpu_description(),
             ", ".join(gpu_loaded) or "none")
    for item in [*gpu_missing, *skipped]:
        log.debug("backend not used: %s", item)
    return state
