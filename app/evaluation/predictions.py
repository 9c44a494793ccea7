"""Reading what ``palidesk run --json`` wrote, and matching it to the truth by file name."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from app.evaluation.truth import TruthError
from app.tasks.output_text import clean_output_text


@dataclass(frozen=True)
class Prediction:
    """One image's answer: ``objects`` as ``run --json`` writes them, or an error."""

    image: str
    text: str
    objects: list[dict[str, Any]]
    tokens: list[int]
    image_size: tuple[int, int] | None
    error: str | None = None
    timings: dict[str, Any] | None = None
    task: str | None = None

    @property
    def answer(self) -> str:
        """The answer without ``<eos>``-style markers or surrounding space."""
        return clean_output_text(self.text)


def prediction_from_record(record: dict[str, Any]) -> Prediction:
    """One ``run --json`` line (a finished answer or an ``{"image", "error"}`` line)."""
    size = record.get("image_size")
    return Prediction(
        image=str(record["image"]),
        text=str(record.get("text", "")),
        objects=[o for o in record.get("objects") or [] if isinstance(o, dict)],
        tokens=[int(t) for t in record.get("tokens") or []],
        image_size=(int(size[0]), int(size[1])) if size and size[0] and size[1] else None,
        error=record.get("error"),
        timings=record.get("timings"),
        task=record.get("task"),
    )


def load_predictions(path: Path) -> list[Prediction]:
    """Every record of a RUN.jsonl; a later record for the same image replaces an earlier one."""
    path = Path(path)
    if not path.is_file():
        raise TruthError(f"The predictions file {path} does not exist.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TruthError(f"{path} cannot be read: {exc}.") from None
    found: dict[str, Prediction] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise TruthError(
                f"{path.name} line {number} is not JSON; give the output of "
                "`palidesk run --json`."
            ) from None
        if not isinstance(record, dict) or "image" not in record:
            raise TruthError(f"{path.name} line {number} has no \"image\": not `palidesk run "
                             "--json` output.")
        prediction = prediction_from_record(record)
        found[prediction.image] = prediction
    return list(found.values())


def match_by_name(truth_names: Iterable[str],
                  predictions: Iterable[Prediction]) -> tuple[dict[str, Prediction], list[str]]:
    """Pair each prediction with the truth image whose whole name is the longest tail of its
    path (``val/cat.jpg`` matches ``/photos/val/cat.jpg`` before ``cat.jpg`` does); failing
    that, with the one truth image of the same file name.

    Returns (truth name -> prediction, predictions that matched no truth image).
    """
    by_path: dict[tuple[str, ...], list[str]] = {}
    by_base: dict[str, list[str]] = {}
    for name in truth_names:
        parts = _parts(name)
        by_path.setdefault(parts, []).append(name)
        by_base.setdefault(parts[-1], []).append(name)
    matched: dict[str, Prediction] = {}
    unmatched: list[str] = []
    for prediction in predictions:
        parts = _parts(prediction.image)
        found = next((by_path[parts[start:]] for start in range(len(parts))
                      if len(by_path.get(parts[start:], [])) == 1), None)
        if found is None and len(by_base.get(parts[-1], [])) == 1:
            found = by_base[parts[-1]]
        if found is None:
            unmatched.append(prediction.image)
        else:
            matched[found[0]] = prediction
    return matched, unmatched


def _parts(name: str) -> tuple[str, ...]:
    return PurePath(name.replace("\\", "/")).parts or ("",)
