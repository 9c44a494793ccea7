"""``palidesk eval``'s output and image folders, checked before any model runs."""

from __future__ import annotations

from pathlib import Path

from app.errors import PaliDeskError

# What run_eval writes into --out; an earlier evaluation's files are never replaced.
_REPORT_FILES = ("report.json", "report.html")
_PREDICTIONS_GLOB = "predictions-*.jsonl"


class EvalOutputError(PaliDeskError):
    """--out cannot take the report, or --images is no folder."""


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


def check_images_folder(images: Path | None) -> None:
    """``--images`` names a folder that exists (a missing one "holds no images" otherwise)."""
    if images is None:
        return
    if not images.exists():
        raise EvalOutputError(f"--images {images} does not exist; give the folder of images.")
    if not images.is_dir():
        raise EvalOutputError(f"--images {images} is a file; give the folder of images.")
