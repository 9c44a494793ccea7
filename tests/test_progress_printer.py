"""What a download's progress looks like in a log (stderr not a terminal)."""

from __future__ import annotations

import io

import pytest

from app.cli import progress_printer
from app.cli.progress_printer import ProgressPrinter, transfer_printer
from app.progress import ProgressEvent


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


def _lines_over(printer_for, seconds: float, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Lines printed for a transfer that reports every 0.25 s for ``seconds``."""
    clock = [100.0]
    monkeypatch.setattr(progress_printer.time, "monotonic", lambda: clock[0])
    log = _Log()
    steps = int(seconds / 0.25)
    with printer_for(log) as printer:
        for step in range(1, steps):
            clock[0] += 0.25
            printer(ProgressEvent("download", step, steps, "model.safetensors 250 kB/s"))
    return log.getvalue().splitlines()


def test_a_download_in_a_log_shows_a_line_at_least_once_a_second(monkeypatch) -> None:
    """Issue 18: bytes, speed and time left at least once a second whatever the link; in
    a log the printer held lines 2 s apart."""
    lines = _lines_over(transfer_printer, 6.0, monkeypatch)
    assert len(lines) >= 6 and all("\r" not in line for line in lines)


def test_other_work_in_a_log_stays_a_few_lines(monkeypatch) -> None:
    lines = _lines_over(ProgressPrinter, 6.0, monkeypatch)
    assert 3 <= len(lines) <= 4  # every 2 s: a log of a long conversion stays readable
