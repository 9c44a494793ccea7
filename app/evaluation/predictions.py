"""Reading what ``palidesk run --json`` wrote, and matching it to the truth by file name."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from app.evaluation.truth import TruthError, check_input_file, parse_json
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
    """One ``run --json`` line (a finished answer or an ``{"image", "error"}`` line).

    Raises ValueError saying which field is not what ``run --json`` writes.
    """
    objects = record.get("objects") or []
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise ValueError('"objects" must be a list of objects')
    for obj in objects:
        score = obj.get("score", 1.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)) \
                or not math.isfinite(score):
            raise ValueError(f'an object\'s "score" is {score!r}, not a finite number')
    tokens = record.get("tokens") or []
    if not isinstance(tokens, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise ValueError('"tokens" must be a list of whole numbers')
    error = record.get("error")
    if error is not None and not isinstance(error, str):
        raise ValueError('"error" must be a sentence')
    task = record.get("task")
    text = record.get("text", "")
    if not isinstance(text, str):  # str(None) would be scored as the answer "None"
        raise ValueError(f'"text" is {text!r}, not a string')
    return Prediction(
        image=str(record["image"]),
        text=text,
        objects=objects,
        tokens=tokens,
        image_size=_image_size(record.get("image_size")),
        error=error,
        timings=record.get("timings") if isinstance(record.get("timings"), dict) else None,
        task=task if isinstance(task, str) else None,
    )


def _image_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in size)):
        raise ValueError(f'"image_size" is {size!r}, not [width, height]')
    return (size[0], size[1]) if size[0] and size[1] else None


def load_predictions(path: Path) -> list[Prediction]:
    """Every record of a RUN.jsonl; a later record for the same image replaces an earlier one."""
    path = Path(path)
    check_input_file(path, "predictions file", "the JSONL that `palidesk run --json` wrote")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TruthError(f"{path} cannot be read: {exc}.") from None
    found: dict[str, Prediction] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        record = parse_json(line, where)
        if not isinstance(record, dict) or not isinstance(record.get("image"), str):
            raise TruthError(f"{where} has no \"image\" file name: not `palidesk run "
                             "--json` output.")
        try:
            prediction = prediction_from_record(record)
        except ValueError as exc:
            raise TruthError(f"{where}: {exc}; give the output of `palidesk run --json`.") \
                from None
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
