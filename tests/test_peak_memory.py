"""GPU memory figures: this process's share where the driver lists processes, else the
whole device's use, said in the log instead of passed off silently."""

from __future__ import annotations

import logging
import os
import sys
import types

import pytest

from app.evaluation.peak_memory import _GpuMemory

MIB = 1024 * 1024


class _NVMLError(Exception):
    pass


def _fake_nvml(processes) -> types.ModuleType:
    """A stand-in for pynvml on one GPU whose device memory in use is 900 MiB.
    ``processes``: the list the driver gives, or an exception it raises."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = _NVMLError
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 1
    nvml.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"
    nvml.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(used=900 * MIB)

    def running(handle):
        if isinstance(processes, Exception):
            raise processes
        return processes

    nvml.nvmlDeviceGetComputeRunningProcesses = running
    return nvml


def _process(pid: int, used: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(pid=pid, usedGpuMemory=used)


def test_only_this_processs_gpu_memory_counts(monkeypatch, caplog) -> None:
    listed = [_process(os.getpid(), 300 * MIB), _process(1, 500 * MIB)]
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(listed))
    gpu = _GpuMemory()
    with caplog.at_level(logging.WARNING):
        assert gpu.read() == 300 * MIB
    assert not gpu.whole_device and not caplog.records


@pytest.mark.parametrize("processes", [[], _NVMLError("Not Supported")])
def test_the_whole_device_figure_is_said_once(monkeypatch, caplog, processes) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(processes))
    gpu = _GpuMemory()
    with caplog.at_level(logging.WARNING):
        assert gpu.read() == 900 * MIB
        assert gpu.read() == 900 * MIB
    assert gpu.whole_device
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "whole device's use, other programs included" in warning.getMessage()


def test_a_bug_in_reading_is_not_taken_for_a_missing_gpu(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(TypeError("a bug")))
    with pytest.raises(TypeError):
        _GpuMemory().read()
