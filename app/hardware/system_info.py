"""System RAM and CPU facts: /proc on Linux, ``os.sysconf`` elsewhere; never raises."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class SystemInfo:
    """RAM in bytes (0 when the OS will not say) and the CPU this process may use."""

    ram_total_bytes: int
    ram_available_bytes: int
    cpu_threads: int
    cpu_model: str
    cpu_flags_summary: str  # "AVX-512", "AVX2", "AVX", "NEON" or "basic"


def read_system(proc: Path = PROC) -> SystemInfo:
    """Read RAM and CPU facts from ``proc`` (a /proc-like folder), falling back to sysconf."""
    total, available = parse_meminfo(_read(proc / "meminfo"))
    if not total:
        total, available = _sysconf_memory()
    model, flags = parse_cpuinfo(_read(proc / "cpuinfo"))
    return SystemInfo(
        ram_total_bytes=total,
        ram_available_bytes=available,
        cpu_threads=_cpu_threads(),
        cpu_model=model or platform.processor() or platform.machine() or "unknown",
        cpu_flags_summary=summarise_flags(flags),
    )


def parse_meminfo(text: str) -> tuple[int, int]:
    """(total, available) bytes from /proc/meminfo text; (0, 0) when absent."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            # /proc/meminfo says "kB" but means KiB.
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
    total = values.get("MemTotal", 0)
    # Kernels before 3.14 lack MemAvailable; free + page cache is the old estimate.
    available = values.get("MemAvailable",
                           values.get("MemFree", 0) + values.get("Cached", 0))
    return total, (min(available, total) if total else available)


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, feature flags) from /proc/cpuinfo text (x86 "flags", Arm "Features")."""
    model = ""
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if not model and key in ("model name", "hardware", "cpu model"):
            model = value.strip()
        elif not flags and key in ("flags", "features"):
            flags = frozenset(value.split())
    return model, flags


def summarise_flags(flags: frozenset[str]) -> str:
    """The widest SIMD level llama.cpp's CPU kernels can use on this CPU."""
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    if "avx" in flags:
        return "AVX"
    if "asimd" in flags or "neon" in flags:
        return "NEON"
    return "basic"


def _cpu_threads() -> int:
    # The affinity mask is what this process may actually use (containers, taskset).
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _sysconf_memory() -> tuple[int, int]:
    """(total, available) bytes from sysconf; 0 for whatever this OS does not expose."""
    def pages(name: str) -> int:
        try:
            return max(0, int(os.sysconf(name)))
        except (AttributeError, ValueError, OSError):
            return 0

    page = pages("SC_PAGE_SIZE")
    return page * pages("SC_PHYS_PAGES"), page * pages("SC_AVPHYS_PAGES")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
