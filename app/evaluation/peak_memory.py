"""Peak resident memory and peak GPU memory while a block of work runs.

A background thread samples every ``interval`` seconds: this process's resident set
(``/proc/self/statm`` on Linux, else ``resource``'s lifetime peak) and, where NVML
sees an NVIDIA GPU, the GPU memory this process uses (the device's used memory, with a
warning in the log, when the driver does not list processes). Samples can miss a spike
shorter than the interval.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux), or its peak so far elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


class _GpuMemory:
    """Reads this process's GPU memory through NVML; ``read()`` is None without a GPU.

    Where the driver does not say which process uses what (it lists none, or cannot be
    asked), the figure is the whole device's use, other programs included: said once in
    the log, and in ``whole_device``.
    """

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self.whole_device = False
        try:
            import pynvml
        except ImportError:  # no library: VRAM is simply not measured
            return
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                             for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as exc:  # no driver, no GPU: VRAM is not measured
            log.debug("no GPU memory figures: %s", exc)
            return
        self._nvml = pynvml

    def read(self) -> int | None:
        if self._nvml is None or not self._handles:
            return None
        total = 0
        for handle in self._handles:
            try:
                processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except self._nvml.NVMLError as exc:
                processes, reason = [], f"the driver cannot list them ({exc})"
            else:
                reason = "the driver lists no processes"
            if processes:
                total += sum(p.usedGpuMemory or 0 for p in processes if p.pid == os.getpid())
                continue
            if not self.whole_device:
                self.whole_device = True
                log.warning("GPU memory per process is unknown here (%s): the VRAM figure "
                            "is the whole device's use, other programs included", reason)
            try:
                total += int(self._nvml.nvmlDeviceGetMemoryInfo(handle).used)
            except self._nvml.NVMLError as exc:
                log.warning("GPU memory could not be read: %s", exc)
                return None
        return total

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.rss_bytes`` / ``peak.vram_bytes``."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.rss_bytes: int | None = None
        self.vram_bytes: int | None = None
        self._stop = threading.Event()
        self._gpu: _GpuMemory | None = None
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        self._gpu = _GpuMemory()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self._gpu is not None:
            self._gpu.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        rss = resident_bytes()
        if rss is not None:
            self.rss_bytes = max(self.rss_bytes or 0, rss)
        vram = self._gpu.read() if self._gpu is not None else None
        if vram is not None:
            self.vram_bytes = max(self.vram_bytes or 0, vram)
