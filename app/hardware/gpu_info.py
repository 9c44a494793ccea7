"""Read every NVIDIA GPU through NVML (``pynvml``), turning each failure into a sentence.

Nothing here raises: no library, no driver, no GPU or an NVML error all come back as an
empty GPU list plus a sentence saying why, so callers can fall back to the CPU.

A GPU whose device calls fail part-way (lost, no permission, ...) is left out and named in
the sentence; the GPUs that could be read are still returned.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

NO_LIBRARY = (
    "The NVIDIA management library (Python package nvidia-ml-py) is not installed, "
    "so GPUs cannot be detected; running on the CPU only."
)
NO_DRIVER = (
    "No NVIDIA driver was found (NVML could not be loaded); running on the CPU only. "
    "Install the NVIDIA driver to use an NVIDIA GPU."
)
NO_GPU = "The NVIDIA driver is installed but reports no GPU; running on the CPU only."
NO_PERMISSION = (
    "This user may not query the NVIDIA driver (insufficient permissions); "
    "running on the CPU only."
)
UNKNOWN = "The NVIDIA driver could not be queried ({detail}); running on the CPU only."

# NVML error class (as pynvml names it) -> sentence for the user. Matched by name along the
# exception's class hierarchy so fake modules in tests and every pynvml release work alike.
_INIT_SENTENCES = {
    "NVMLError_LibraryNotFound": NO_DRIVER,
    "NVMLError_DriverNotLoaded": NO_DRIVER,
    "NVMLError_NoPermission": NO_PERMISSION,
    "NVMLError_GpuNotFound": NO_GPU,
}
# Errors that mean "this driver has no v2 memory call": fall back to the v1 call.
_NO_V2_MEMORY = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound",
                 "NVMLError_ArgumentVersionMismatch", "NVMLLibraryMismatchError")


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA GPU as NVML reports it; memory in bytes."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    reserved_bytes: int  # driver/firmware reservation; 0 when only the v1 call exists
    driver_version: str  # "unknown" when NVML cannot say
    compute_capability: tuple[int, int] | None
    uuid: str | None


def read_gpus(nvml: Any = None) -> tuple[list[GpuInfo], str | None]:
    """Return the NVIDIA GPUs and a sentence for the user when something is missing.

    ``nvml`` is the ``pynvml`` module (imported lazily when None); tests pass a fake.
    The sentence is None when every GPU was read; the list is empty for "CPU only".
    """
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            return [], NO_LIBRARY
        except Exception as exc:  # a broken install must not stop the app from starting
            return [], UNKNOWN.format(detail=_describe(exc))
    try:
        nvml.nvmlInit()
    except Exception as exc:  # any failure to start NVML means "CPU only", never a crash
        return [], _init_sentence(exc)
    try:
        return _read_all(nvml)
    except Exception as exc:
        return [], UNKNOWN.format(detail=_describe(exc))
    finally:
        # Shut down whenever init succeeded; a failed shutdown must not hide the GPUs read.
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _read_all(nvml: Any) -> tuple[list[GpuInfo], str | None]:
    count = int(nvml.nvmlDeviceGetCount())
    if count <= 0:
        return [], NO_GPU
    driver = _optional(lambda: _text(nvml.nvmlSystemGetDriverVersion())) or "unknown"
    gpus: list[GpuInfo] = []
    skipped: list[str] = []
    for index in range(count):
        try:
            gpus.append(_read_one(nvml, index, driver))
        except Exception as exc:
            skipped.append(f"GPU {index} ({_describe(exc)})")
    if not skipped:
        return gpus, None
    left_out = ", ".join(skipped)
    if not gpus:
        return [], f"No NVIDIA GPU could be read: {left_out}; running on the CPU only."
    return gpus, f"Some NVIDIA GPUs could not be read and are left out: {left_out}."


def _read_one(nvml: Any, index: int, driver: str) -> GpuInfo:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(nvml.nvmlDeviceGetName(handle))
    total, free, used, reserved = _memory(nvml, handle)
    capability = _optional(lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
    uuid = _optional(lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
    return GpuInfo(
        index=index,
        name=name,
        total_bytes=total,
        free_bytes=free,
        used_bytes=used,
        reserved_bytes=reserved,
        driver_version=driver,
        compute_capability=(int(capability[0]), int(capability[1])) if capability else None,
        uuid=uuid or None,
    )


def _memory(nvml: Any, handle: Any) -> tuple[int, int, int, int]:
    """(total, free, used, reserved): v2 where the driver has it (it splits out reserved)."""
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            info = nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            return int(info.total), int(info.free), int(info.used), int(info.reserved)
        except TypeError:
            pass  # an older pynvml whose call takes no ``version``
        except Exception as exc:
            if not _is_any(exc, _NO_V2_MEMORY):
                raise
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    return int(info.total), int(info.free), int(info.used), 0


def _optional(read: Callable[[], T]) -> T | None:
    """Run a read that may fail on some drivers (UUID, capability...); None if it does."""
    try:
        return read()
    except Exception:
        return None


def _text(value: str | bytes) -> str:
    # pynvml returns bytes before 11.x and str after; accept both.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _class_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


def _is_any(exc: BaseException, names: tuple[str, ...]) -> bool:
    return any(name in names for name in _class_names(exc))


def _init_sentence(exc: BaseException) -> str:
    for name in _class_names(exc):
        if name in _INIT_SENTENCES:
            return _INIT_SENTENCES[name]
    return UNKNOWN.format(detail=_describe(exc))


def _describe(exc: BaseException) -> str:
    """Short text for an error; pynvml's ``str()`` may itself call into NVML, so guard it."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__
