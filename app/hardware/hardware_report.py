"""What this machine can run on: NVIDIA GPUs, RAM, CPU, and whether llama.cpp can offload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.hardware.gpu_info import GpuInfo, read_gpus
from app.hardware.system_info import SystemInfo, read_system

GPU_BUILD_COMMAND = 'PALIDESK_CMAKE_ARGS="-DGGML_CUDA=on" python3.11 tools/bootstrap.py'
CPU_ONLY_BUILD_ADVICE = (
    "An NVIDIA GPU is present, but the installed llama.cpp build (llama-cpp-python) is "
    "CPU-only, so models run on the CPU. To rebuild it with CUDA (needs the CUDA toolkit), "
    f"run: {GPU_BUILD_COMMAND}"
)
_GIB = 1024**3


def format_gb(size_bytes: int) -> str:
    """Bytes as "7.6 GB" (binary gigabytes, the unit nvidia-smi and OS tools show)."""
    return f"{size_bytes / _GIB:.1f} GB"


@dataclass(frozen=True)
class HardwareReport:
    """Everything PaliDesk needs to know to choose a device; see ``detect``."""

    gpus: tuple[GpuInfo, ...]
    gpu_problem: str | None  # why GPUs are missing or partly unread; None when all is well
    system: SystemInfo
    gpu_offload_supported: bool  # whether the installed llama.cpp build can use a GPU
    advice: str | None = None  # what to do when a GPU is present but unusable

    def best_gpu(self) -> GpuInfo | None:
        """The GPU with the most free memory, or None on a CPU-only machine."""
        return max(self.gpus, key=lambda gpu: gpu.free_bytes, default=None)

    def summary(self) -> str:
        """One line for a status bar."""
        gpu = self.best_gpu()
        if gpu is None:
            return (f"CPU only · {self.system.cpu_threads} threads · "
                    f"{format_gb(self.system.ram_total_bytes)} RAM")
        parts = [f"{gpu.name} · {format_gb(gpu.free_bytes)} free of "
                 f"{format_gb(gpu.total_bytes)}"]
        if len(self.gpus) > 1:
            parts.append(f"{len(self.gpus)} GPUs")
        if not self.gpu_offload_supported:
            parts.append("CPU-only llama.cpp build")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists, not tuples; sizes in bytes)."""
        return {
            "summary": self.summary(),
            "gpus": [_gpu_dict(gpu) for gpu in self.gpus],
            "gpu_problem": self.gpu_problem,
            "gpu_offload_supported": self.gpu_offload_supported,
            "advice": self.advice,
            "system": {
                "ram_total_bytes": self.system.ram_total_bytes,
                "ram_available_bytes": self.system.ram_available_bytes,
                "cpu_threads": self.system.cpu_threads,
                "cpu_model": self.system.cpu_model,
                "cpu_flags_summary": self.system.cpu_flags_summary,
            },
        }


def detect(nvml: Any = None, offload_supported: bool | None = None,
           system: SystemInfo | None = None) -> HardwareReport:
    """Read GPUs, RAM and CPU; never raises.

    ``nvml`` is a stand-in for ``pynvml`` (tests); ``offload_supported`` overrides asking
    llama.cpp; ``system`` overrides reading /proc.
    """
    gpus, problem = read_gpus(nvml)
    if offload_supported is None:
        offload_supported = llama_offload_supported()
    advice = CPU_ONLY_BUILD_ADVICE if gpus and not offload_supported else None
    return HardwareReport(
        gpus=tuple(gpus),
        gpu_problem=problem,
        system=system if system is not None else read_system(),
        gpu_offload_supported=offload_supported,
        advice=advice,
    )


def llama_offload_supported() -> bool:
    """Ask the installed llama-cpp-python build; False when it cannot even be loaded."""
    try:
        # Imported here: loading llama.cpp's shared library is slow and may fail.
        from app.engine.llama_library import supports_gpu_offload

        return supports_gpu_offload()
    except Exception:  # ImportError, or OSError/RuntimeError from a broken shared library
        return False


def llama_cpu_backend() -> str:
    """Which llama.cpp CPU backend runs models here, e.g. "zen4 (AVX-512 VBMI, VNNI, BF16)";
    never raises (a release build picks it at run time: app/engine/cpu_backends.py)."""
    try:
        from app.engine.llama_library import cpu_backend_line
    except Exception as exc:  # llama.cpp's shared library itself cannot be loaded
        return f"unknown (llama.cpp could not be loaded: {exc})"
    return cpu_backend_line()


def _gpu_dict(gpu: GpuInfo) -> dict[str, Any]:
    return {
        "index": gpu.index,
        "name": gpu.name,
        "total_bytes": gpu.total_bytes,
        "free_bytes": gpu.free_bytes,
        "used_bytes": gpu.used_bytes,
        "reserved_bytes": gpu.reserved_bytes,
        "driver_version": gpu.driver_version,
        "compute_capability": list(gpu.compute_capability) if gpu.compute_capability else None,
        "uuid": gpu.uuid,
    }
