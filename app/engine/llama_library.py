"""Process-wide llama.cpp set-up: backend init (and, for release builds, loading the
backend files: see ``cpu_backends``), log routing, and build/CPU facts."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
from functools import cache
from pathlib import Path

import llama_cpp
from llama_cpp import mtmd_cpp

from app.engine.cpu_backends import BackendState, NoCpuBackendError, load_backends

log = logging.getLogger("palidesk.llama")

_init_lock = threading.Lock()
_initialised = False
_backends: BackendState | None = None
_backend_error: NoCpuBackendError | None = None
# ggml log levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. Its warnings are
# mostly notes for developers (e.g. "using full-size SWA cache"), so they go to INFO.
_LEVELS = {2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
_last_level = logging.DEBUG
# What llama.cpp logs as errors when a decode stops because we asked it to (Cancel,
# Ctrl+C, closing the window): status 1 is GGML_STATUS_ABORTED, decode's 2 is "aborted".
_ABORT_NOTES = re.compile(
    r"failed to decode, ret = 2$|compute_async failed with error 1$|compute status: 1$"
)


@llama_cpp.llama_log_callback
def _route_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    # llama.cpp is chatty on stderr; send it to Python logging (debug unless it warns),
    # so the CLI's --json stdout stays clean and the window can show errors.
    global _last_level
    if level != 5:  # 5 = continuation of the previous line
        _last_level = _LEVELS.get(level, logging.DEBUG)
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        level = logging.DEBUG if _ABORT_NOTES.search(message) else _last_level
        log.log(level, message)


def library_dir() -> Path:
    """The folder llama-cpp-python loaded libllama from (inside the bundle when frozen)."""
    loaded = getattr(getattr(llama_cpp.llama_cpp, "_lib", None), "_name", None)
    if loaded:
        return Path(loaded).parent
    return Path(llama_cpp.__file__).parent / "lib"


def ensure_backend() -> BackendState:
    """Initialise llama.cpp once per process, route its logs and load its backends.

    Raises NoCpuBackendError (an EngineError, every time it is called) when the build's
    CPU backend files are all unusable.
    """
    global _initialised, _backends, _backend_error
    with _init_lock:
        if not _initialised:
            llama_cpp.llama_log_set(_route_log, ctypes.c_void_p(0))
            mtmd_cpp.mtmd_log_set(_route_log, ctypes.c_void_p(0))
            mtmd_cpp.mtmd_helper_log_set(_route_log, ctypes.c_void_p(0))
            try:
                _backends = load_backends(library_dir())
            except NoCpuBackendError as exc:
                _backend_error = exc
            llama_cpp.llama_backend_init()
            _initialised = True
        if _backend_error is not None:
            raise _backend_error
        assert _backends is not None
        return _backends


def cpu_backend_line() -> str:
    """The CPU backend in use, for reports ("zen4 (AVX-512 VBMI, VNNI, BF16)"); never raises."""
    try:
        return ensure_backend().cpu_description()
    except NoCpuBackendError as exc:
        return f"none could be loaded ({exc})"


def gpu_backend_notice() -> str | None:
    """A GPU build whose GPU backend did not load (no driver): what to tell the user."""
    try:
        return ensure_backend().gpu_notice()
    except NoCpuBackendError:
        return None


def supports_gpu_offload() -> bool:
    """Whether this llama-cpp-python build can place layers on a GPU (False when llama.cpp
    has no usable backend: the model load then says why)."""
    try:
        ensure_backend()
    except NoCpuBackendError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


@cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def use_extra_buffer_types() -> bool:
    """Whether to let llama.cpp use its extra CPU buffer types (AMX, weight repacking).

    Off on AVX-512 CPUs: a native build would use AMX tiles there, which fault (SIGILL)
    in VMs that advertise but do not allow AMX, and repacked Q4_K weights were measured
    ~2 s slower at prefill than ggml's tiled K-quant matmul. On AVX2-only CPUs repacking
    helps, so it stays on. ``PALIDESK_EXTRA_BUFTS=0/1`` overrides.
    """
    forced = os.environ.get("PALIDESK_EXTRA_BUFTS")
    if forced in ("0", "1"):
        return forced == "1"
    flags = cpu_flags()
    return not ("avx512f" in flags or any(f.startswith("amx") for f in flags))


def default_threads() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count), at most 16.

    llama.cpp's threads wait for each other after every graph node, so asking for more
    threads than the process can actually use only adds waiting.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 16))
