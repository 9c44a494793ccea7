"""app.hardware: NVML through a fake ``pynvml``, /proc parsing, the report, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.cli.hardware_command import report_lines
from app.hardware import (
    CPU_ONLY_BUILD_ADVICE,
    GPU_BUILD_COMMAND,
    GpuInfo,
    HardwareReport,
    SystemInfo,
    detect,
    read_gpus,
    read_system,
)
from app.hardware.gpu_info import NO_DRIVER, NO_GPU, NO_LIBRARY, NO_PERMISSION
from app.hardware.system_info import parse_cpuinfo, parse_meminfo, summarise_flags

GIB = 1024**3
ROOT = Path(__file__).resolve().parent.parent


# Error classes shaped like pynvml's generated ones (NVMLError_<Name> subclasses NVMLError).
class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_NoPermission(NVMLError):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_FunctionNotFound(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


class NVMLError_Unknown(NVMLError):
    pass


class FakeNvml:
    """A stand-in for the ``pynvml`` module: GPUs are dicts, failures are injected."""

    NVMLError = NVMLError
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    nvmlMemory_v2 = 0x02000028

    def __init__(self, gpus: list[dict[str, Any]], *, init_error: Exception | None = None,
                 v2_error: Exception | None = None, driver: str | bytes = "550.54.14",
                 fail_at: dict[tuple[str, int], Exception] | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.v2_error = v2_error
        self.driver = driver
        self.fail_at = fail_at or {}
        self.calls: list[str] = []

    def _check(self, call: str, index: int) -> None:
        error = self.fail_at.get((call, index))
        if error is not None:
            raise error

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self.driver

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._check("handle", index)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        self._check("name", handle)
        return self.gpus[handle]["name"]

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle:08d}"

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        self._check("capability", handle)
        return self.gpus[handle]["cc"]

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: int | None = None) -> Any:
        self._check("memory", handle)
        gpu = self.gpus[handle]
        if version is None:
            self.calls.append("memory_v1")
            # v1 counts the driver's reservation as used.
            return SimpleNamespace(total=gpu["total"], free=gpu["free"],
                                   used=gpu["total"] - gpu["free"])
        self.calls.append("memory_v2")
        if self.v2_error is not None:
            raise self.v2_error
        assert version == self.nvmlMemory_v2
        return SimpleNamespace(version=version, total=gpu["total"], free=gpu["free"],
                               reserved=gpu["reserved"],
                               used=gpu["total"] - gpu["free"] - gpu["reserved"])


def two_gpus() -> list[dict[str, Any]]:
    return [
        {"name": "NVIDIA GeForce RTX 3070", "total": 8 * GIB, "free": 6 * GIB,
         "reserved": GIB // 4, "cc": (8, 6)},
        {"name": "NVIDIA RTX A6000", "total": 48 * GIB, "free": 40 * GIB,
         "reserved": GIB // 2, "cc": (8, 6)},
    ]


SYSTEM = SystemInfo(ram_total_bytes=32 * GIB, ram_available_bytes=20 * GIB, cpu_threads=16,
                    cpu_model="Test CPU", cpu_flags_summary="AVX2")


# --- read_gpus ---------------------------------------------------------------------------

def test_two_gpus_with_v2_memory() -> None:
    nvml = FakeNvml(two_gpus())
    gpus, problem = read_gpus(nvml)
    assert problem is None
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 3070", "NVIDIA RTX A6000"]
    first = gpus[0]
    assert first == GpuInfo(index=0, name="NVIDIA GeForce RTX 3070", total_bytes=8 * GIB,
                            free_bytes=6 * GIB, used_bytes=2 * GIB - GIB // 4,
                            reserved_bytes=GIB // 4, driver_version="550.54.14",
                            compute_capability=(8, 6), uuid="GPU-00000000")
    assert "memory_v1" not in nvml.calls
    assert nvml.calls.count("shutdown") == 1


@pytest.mark.parametrize("error", [NVMLError_NotSupported(), NVMLError_FunctionNotFound(),
                                   TypeError("unexpected keyword argument 'version'")])
def test_v1_only_driver_falls_back_with_no_reservation(error: Exception) -> None:
    nvml = FakeNvml(two_gpus(), v2_error=error)
    gpus, problem = read_gpus(nvml)
    assert problem is None
    assert [g.reserved_bytes for g in gpus] == [0, 0]
    assert gpus[0].used_bytes == 2 * GIB  # v1's used includes the reservation
    assert "memory_v1" in nvml.calls


def test_pynvml_without_the_v2_constant_uses_v1() -> None:
    nvml = FakeNvml(two_gpus())
    nvml.nvmlMemory_v2 = None  # type: ignore[assignment] - an old pynvml lacks it
    gpus, _ = read_gpus(nvml)
    assert gpus[1].free_bytes == 40 * GIB and gpus[1].reserved_bytes == 0


@pytest.mark.parametrize(("error", "sentence"), [
    (NVMLError_LibraryNotFound(), NO_DRIVER),
    (NVMLError_DriverNotLoaded(), NO_DRIVER),
    (NVMLError_NoPermission(), NO_PERMISSION),
])
def test_init_failures_mean_cpu_only(error: Exception, sentence: str) -> None:
    nvml = FakeNvml(two_gpus(), init_error=error)
    assert read_gpus(nvml) == ([], sentence)
    assert "shutdown" not in nvml.calls  # NVML was never started


def test_unknown_init_error_is_a_sentence_not_a_crash() -> None:
    gpus, problem = read_gpus(FakeNvml([], init_error=NVMLError_Unknown("Unknown Error")))
    assert gpus == []
    assert problem is not None and "Unknown Error" in problem and "CPU only" in problem


def test_no_gpu() -> None:
    nvml = FakeNvml([])
    assert read_gpus(nvml) == ([], NO_GPU)
    assert nvml.calls == ["init", "shutdown"]


def test_a_gpu_failing_mid_way_is_left_out_and_named() -> None:
    nvml = FakeNvml(two_gpus(), fail_at={("memory", 0): NVMLError_GpuIsLost("GPU is lost")})
    gpus, problem = read_gpus(nvml)
    assert [g.index for g in gpus] == [1]
    assert problem is not None and "GPU 0 (GPU is lost)" in problem
    assert nvml.calls.count("shutdown") == 1


def test_every_gpu_failing_is_cpu_only() -> None:
    lost = NVMLError_GpuIsLost("GPU is lost")
    nvml = FakeNvml(two_gpus(), fail_at={("handle", 0): lost, ("name", 1): lost})
    gpus, problem = read_gpus(nvml)
    assert gpus == []
    assert problem is not None and "CPU only" in problem and "GPU 1" in problem
    assert nvml.calls[-1] == "shutdown"


def test_optional_fields_failing_keep_the_gpu() -> None:
    nvml = FakeNvml(two_gpus(), fail_at={("capability", 0): NVMLError_NotSupported()})
    gpus, problem = read_gpus(nvml)
    assert problem is None
    assert gpus[0].compute_capability is None and gpus[1].compute_capability == (8, 6)


def test_count_failing_is_reported_and_shut_down() -> None:
    nvml = FakeNvml(two_gpus())

    def count() -> int:
        raise NVMLError_Unknown("boom")

    nvml.nvmlDeviceGetCount = count  # type: ignore[method-assign]
    gpus, problem = read_gpus(nvml)
    assert gpus == [] and problem is not None and "boom" in problem
    assert nvml.calls == ["init", "shutdown"]


def test_names_and_driver_as_bytes() -> None:
    gpus_spec = two_gpus()
    gpus_spec[0]["name"] = b"GeForce GTX 1080"
    gpus, _ = read_gpus(FakeNvml(gpus_spec, driver=b"470.82.01"))
    assert gpus[0].name == "GeForce GTX 1080"
    assert gpus[0].driver_version == "470.82.01"


def test_a_failing_shutdown_does_not_hide_the_gpus() -> None:
    nvml = FakeNvml(two_gpus())

    def shutdown() -> None:
        raise NVMLError_Unknown("shutdown failed")

    nvml.nvmlShutdown = shutdown  # type: ignore[method-assign]
    gpus, problem = read_gpus(nvml)
    assert len(gpus) == 2 and problem is None


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes ``import pynvml`` fail
    assert read_gpus() == ([], NO_LIBRARY)
    report = detect(offload_supported=False, system=SYSTEM)
    assert report.gpus == () and report.gpu_problem == NO_LIBRARY
    assert report.summary().startswith("CPU only")


# --- system info -------------------------------------------------------------------------

MEMINFO = """MemTotal:       32768000 kB
MemFree:         1000000 kB
MemAvailable:   20480000 kB
Cached:          5000000 kB
"""
CPUINFO_X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i9-13900K
flags\t\t: fpu sse sse2 avx avx2 fma f16c
processor\t: 1
model name\t: Intel(R) Core(TM) i9-13900K
flags\t\t: fpu sse sse2 avx avx2 fma f16c
"""


def test_read_system_from_a_fake_proc(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text(MEMINFO)
    (tmp_path / "cpuinfo").write_text(CPUINFO_X86)
    info = read_system(tmp_path)
    assert info.ram_total_bytes == 32768000 * 1024
    assert info.ram_available_bytes == 20480000 * 1024
    assert info.cpu_model == "Intel(R) Core(TM) i9-13900K"
    assert info.cpu_flags_summary == "AVX2"
    assert info.cpu_threads >= 1


def test_read_system_without_proc_falls_back(tmp_path: Path) -> None:
    info = read_system(tmp_path / "missing")
    assert info.ram_total_bytes >= 0 and info.cpu_threads >= 1
    assert info.cpu_model and info.cpu_flags_summary == "basic"


def test_old_kernel_without_memavailable() -> None:
    total, available = parse_meminfo("MemTotal: 1000 kB\nMemFree: 200 kB\nCached: 300 kB\n")
    assert (total, available) == (1000 * 1024, 500 * 1024)
    assert parse_meminfo("garbage\n: \nMemTotal: x kB") == (0, 0)


def test_arm_cpuinfo_and_flag_levels() -> None:
    model, flags = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd evtstrm\n"
                                 "CPU part\t: 0xd0c\nHardware\t: Ampere Altra\n")
    assert model == "Ampere Altra" and summarise_flags(flags) == "NEON"
    assert summarise_flags(frozenset({"avx2", "avx512f"})) == "AVX-512"
    assert summarise_flags(frozenset({"avx"})) == "AVX"
    assert summarise_flags(frozenset()) == "basic"


# --- the report --------------------------------------------------------------------------

def test_gpu_without_offload_gets_build_advice() -> None:
    report = detect(FakeNvml(two_gpus()), offload_supported=False, system=SYSTEM)
    assert report.advice == CPU_ONLY_BUILD_ADVICE
    assert GPU_BUILD_COMMAND in report.advice and "CPU-only" in report.advice
    assert 'PALIDESK_CMAKE_ARGS="-DGGML_CUDA=on"' in report.advice
    assert "CPU-only llama.cpp build" in report.summary()


def test_gpu_with_offload_summary_and_best_gpu() -> None:
    report = detect(FakeNvml(two_gpus()), offload_supported=True, system=SYSTEM)
    assert report.advice is None
    best = report.best_gpu()
    assert best is not None and best.name == "NVIDIA RTX A6000"
    assert report.summary() == "NVIDIA RTX A6000 · 40.0 GB free of 48.0 GB · 2 GPUs"


def test_cpu_only_summary_and_no_advice() -> None:
    report = detect(FakeNvml([], init_error=NVMLError_DriverNotLoaded()),
                    offload_supported=False, system=SYSTEM)
    assert report.best_gpu() is None and report.advice is None
    assert report.gpu_problem == NO_DRIVER
    assert report.summary() == "CPU only · 16 threads · 32.0 GB RAM"


def test_to_dict_is_json_ready() -> None:
    report = detect(FakeNvml(two_gpus()), offload_supported=True, system=SYSTEM)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["gpus"][0]["compute_capability"] == [8, 6]
    assert data["gpus"][1]["reserved_bytes"] == GIB // 2
    assert data["system"]["cpu_threads"] == 16
    assert data["gpu_offload_supported"] is True and data["advice"] is None


def test_real_detection_never_raises() -> None:
    # Whatever this machine has (the CI machines have no GPU), detection must answer.
    report = detect()
    assert isinstance(report, HardwareReport)
    assert report.summary()
    if not report.gpus:
        assert report.summary().startswith("CPU only") and report.gpu_problem


# --- CLI ---------------------------------------------------------------------------------

def test_cli_hardware_json_is_one_object() -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli.main", "hardware", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert {"summary", "gpus", "gpu_problem", "gpu_offload_supported", "advice",
            "system"} <= set(data)


def test_readable_report_lists_gpus_and_advice() -> None:
    report = detect(FakeNvml(two_gpus(), v2_error=NVMLError_NotSupported()),
                    offload_supported=False, system=SYSTEM)
    text = "\n".join(report_lines(report))
    assert "gpu 0:        NVIDIA GeForce RTX 3070, 6.0 GB free of 8.0 GB, compute 8.6" in text
    assert "driver 550.54.14" in text and "reserved" not in text  # v1: nothing reserved
    assert "gpu offload:  no" in text and f"advice:       {CPU_ONLY_BUILD_ADVICE}" in text


def test_cli_hardware_readable() -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli.main", "hardware"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("summary:")
    assert "gpu offload:" in done.stdout and "ram:" in done.stdout
