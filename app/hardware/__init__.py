"""What this machine offers PaliDesk: NVIDIA GPUs (NVML), RAM, CPU, llama.cpp offload.

Qt-free and never raising: a machine without a usable GPU gets a "CPU only" report.
"""

from app.hardware.gpu_info import GpuInfo, read_gpus
from app.hardware.hardware_report import (
    CPU_ONLY_BUILD_ADVICE,
    GPU_BUILD_COMMAND,
    HardwareReport,
    detect,
    format_gb,
    llama_cpu_backend,
    llama_offload_supported,
)
from app.hardware.system_info import SystemInfo, read_system

__all__ = [
    "CPU_ONLY_BUILD_ADVICE",
    "GPU_BUILD_COMMAND",
    "GpuInfo",
    "HardwareReport",
    "SystemInfo",
    "detect",
    "format_gb",
    "llama_cpu_backend",
    "llama_offload_supported",
    "read_gpus",
    "read_system",
]
