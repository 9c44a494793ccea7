"""``palidesk hardware``: the GPUs, RAM and CPU PaliDesk sees, readable or as JSON."""

from __future__ import annotations

import json

from app.hardware import HardwareReport, detect, format_gb, llama_cpu_backend


def print_hardware(as_json: bool = False) -> int:
    """Print the hardware report; exit code 0 (a CPU-only machine is a valid answer)."""
    report = detect()
    backend = llama_cpu_backend()
    if as_json:
        # One JSON object on one line, nothing else on stdout (scripts parse it).
        print(json.dumps({**report.to_dict(), "cpu_backend": backend}))
    else:
        print("\n".join([*report_lines(report), f"cpu backend:  {backend}"]))
    return 0


def report_lines(report: HardwareReport) -> list[str]:
    """The readable report, one string per line."""
    system = report.system
    lines = [f"summary:      {report.summary()}"]
    if not report.gpus:
        lines.append("gpus:         none (CPU only)")
    for gpu in report.gpus:
        capability = ".".join(map(str, gpu.compute_capability)) if gpu.compute_capability else "?"
        reserved = f", {format_gb(gpu.reserved_bytes)} reserved" if gpu.reserved_bytes else ""
        label = f"gpu {gpu.index}:"
        lines.append(f"{label:<14}{gpu.name}, {format_gb(gpu.free_bytes)} free of "
                     f"{format_gb(gpu.total_bytes)}{reserved}, compute {capability}, "
                     f"driver {gpu.driver_version}")
    if report.gpu_problem:
        lines.append(f"gpu note:     {report.gpu_problem}")
    offload = "yes" if report.gpu_offload_supported else "no (CPU-only build)"
    lines.append(f"gpu offload:  {offload}")
    lines.append(f"cpu:          {system.cpu_model} ({system.cpu_flags_summary}), "
                 f"{system.cpu_threads} threads")
    lines.append(f"ram:          {format_gb(system.ram_available_bytes)} available of "
                 f"{format_gb(system.ram_total_bytes)}")
    if report.advice:
        lines.append(f"advice:       {report.advice}")
    return lines
