"""Process-wide llama.cpp set-up: backend init, log routing, and build/CPU facts."""

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

log = logging.getLogger("palidesk.llama")

_init_lock = threading.Lock()
_initialised = False
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


def ensure_backend() -> None:
    """Initialise llama.cpp once per process and route its logs."""
    global _initialised
    with _init_lock:
        if _initialised:
            return
        llama_cpp.llama_log_set(_route_log, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_log_set(_route_log, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(_route_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _initialised = True


def supports_gpu_offload() -> bool:
    """Whether this llama-cpp-python build can place layers on a GPU."""
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
