"""Which images an evaluation runs on, and the task request for each one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.evaluation.truth import IMAGE_SUFFIXES, SpatialTruth, TextTruth, TruthError
from app.tasks.prompts import CaptionStyle, TaskKind, TaskRequest, parse_classes


@dataclass(frozen=True)
class EvalImage:
    path: Path
    request: TaskRequest


def truth_images_root(truth_path: Path) -> Path:
    """Where a truth's image names are relative to: YOLO's images/, else the file's folder."""
    truth_path = Path(truth_path)
    return truth_path / "images" if truth_path.is_dir() else truth_path.parent


def collect_images(task: str, truth: SpatialTruth | TextTruth | None, truth_path: Path | None,
                   images_dir: Path | None, limit: int | None = None, classes: str = "",
                   question: str = "", caption_style: str = "caption",
                   lang: str = "en") -> list[EvalImage]:
    """The images to run, each with its request, sorted by path, at most ``limit``.

    With truth: its labelled images, found under ``images_dir`` (or beside the truth).
    Without: every image in ``images_dir``. Detect and segment look for ``classes``, or
    else every category of the truth; ask uses each truth line's ``question``, or else
    ``question`` for all.
    """
    kind = TaskKind(task)
    if truth is None:
        if images_dir is None:
            raise TruthError("Give an image folder (--images), labelled truth (--truth), "
                             "or both.")
        paths = sorted(p for p in Path(images_dir).rglob("*") if p.suffix.lower()
                       in IMAGE_SUFFIXES and p.is_file())
        names = {p: p.name for p in paths}
    else:
        root = Path(images_dir) if images_dir is not None else truth_images_root(truth_path)
        labelled = ([i.file_name for i in truth.images] if isinstance(truth, SpatialTruth)
                    else list(truth.answers))
        names = {}
        for name in labelled:
            path = _find(root, name)
            if path is not None:
                names[path] = name
        if not names:
            raise TruthError(f"None of the labelled images were found under {root}; "
                             "give the image folder with --images.")
        paths = sorted(names)
    if not paths:
        raise TruthError(f"{images_dir} holds no images.")
    if limit is not None:
        paths = paths[: max(limit, 0)]
    found_classes = parse_classes(classes)
    if kind.is_spatial and not found_classes:
        if not isinstance(truth, SpatialTruth):
            raise TruthError("Detect and segment need the object names to look for: "
                             "give --classes \"cat; dog\", or labelled truth.")
        found_classes = tuple(truth.categories.values())
    questions = _questions(truth_path) if kind is TaskKind.ASK and truth_path else {}
    result = []
    for path in paths:
        asked = questions.get(names[path], question) if kind is TaskKind.ASK else None
        if kind is TaskKind.ASK and not asked:
            raise TruthError(f"No question for {names[path]}: add \"question\" to its truth "
                             "line, or give --prompt for every image.")
        result.append(EvalImage(path, TaskRequest(
            kind=kind, lang=lang, caption_style=CaptionStyle(caption_style),
            question=asked, classes=found_classes)))
    return result


def _find(root: Path, name: str) -> Path | None:
    candidate = root / name
    if candidate.is_file():
        return candidate
    by_name = list(root.rglob(Path(name).name)) if root.is_dir() else []
    return by_name[0] if len(by_name) == 1 else None


def _questions(truth_path: Path) -> dict[str, str]:
    """``question`` of each JSONL truth line (the JSONL has been read once already)."""
    questions: dict[str, str] = {}
    for line in Path(truth_path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if isinstance(record.get("question"), str):
                questions[record["image"]] = record["question"]
    return questions
