"""``palidesk eval``'s output folder, checked before the work, and its progress display."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import PaliDeskError
from app.progress import ProgressEvent

# What run_eval writes into --out; an earlier evaluation's files are never replaced.
_REPORT_FILES = ("report.json", "report.html")
_PREDICTIONS_GLOB = "predictions-*.jsonl"


class EvalOutputError(PaliDeskError):
    """--out cannot take the report."""


def check_out_folder(out: Path) -> None:
    """Refuse an --out that is not a folder or already holds a report, before any work."""
    if out.exists() and not out.is_dir():
        raise EvalOutputError(f"--out {out} is a file; give a folder for the report (a new "
                              "or empty one).")
    if out.is_dir():
        found = [name for name in _REPORT_FILES if (out / name).exists()]
        found += sorted(p.name for p in out.glob(_PREDICTIONS_GLOB))
        if found:
            raise EvalOutputError(
                f"{out} already holds an evaluation ({', '.join(found[:3])}); choose another "
                "--out folder, or remove that one first.")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise EvalOutputError(f"--out {out} cannot be created: {parent} is a file.")


def eval_progress(total: int) -> tuple[Any, Callable[[ProgressEvent], None]]:
    """A progress display and its callback: a tqdm bar on a terminal; in a log (no
    terminal), one plain line per step at most every few seconds, never a ``\\r``."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="image", file=sys.stderr, dynamic_ncols=True)

        def on_terminal(event: ProgressEvent) -> None:
            bar.set_description(event.stage)
            bar.n = event.done
            bar.refresh()

        return bar, on_terminal
    from app.cli.progress_printer import ProgressPrinter

    printer = ProgressPrinter(sys.stderr, interval_s=5.0)
    return _Closing(), printer


class _Closing:
    """The plain-line display needs no closing; ``close()`` keeps one call site."""

    def close(self) -> None:
        pass
