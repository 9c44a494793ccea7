"""``score``: metrics for predictions that already exist, against labelled images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.counted import counted
from app.evaluation.predictions import Prediction, load_predictions, match_by_name
from app.evaluation.scored_tasks import SCORED_TASKS
from app.evaluation.spatial_metrics import score_spatial
from app.evaluation.text_metrics import ask_metrics, caption_metrics, ocr_metrics
from app.evaluation.truth import (
    SpatialTruth,
    TextTruth,
    TruthError,
    load_spatial_truth,
    load_text_truth,
)

# Whether a larger value is better, for tables and charts.
HIGHER_IS_BETTER = {"mAP": True, "AP50": True, "AP75": True, "recall": True, "mIoU": True,
                    "cer": False, "wer": False, "bleu4": True, "chrf": True,
                    "exact_match": True, "anls": True}


@dataclass
class ScoreReport:
    """What ``palidesk score --json`` prints: task, images scored, metrics, and notes."""

    task: str
    images: int
    metrics: dict[str, float | None]
    not_predicted: list[str] = field(default_factory=list)
    not_in_truth: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "images": self.images, "metrics": self.metrics,
                "not_predicted": self.not_predicted, "not_in_truth": self.not_in_truth,
                "failed": self.failed, "notes": self.notes}


def load_truth(task: str, path: Path) -> SpatialTruth | TextTruth:
    """The truth for ``task``, in whichever format ``path`` holds."""
    if task not in SCORED_TASKS:
        raise TruthError(f"Cannot score the {task!r} task; scored tasks: "
                         f"{', '.join(SCORED_TASKS)}.")
    if task in ("detect", "segment"):
        truth = load_spatial_truth(path)
        if task == "segment" and not truth.has_masks:
            raise TruthError(f"{Path(path).name} has boxes but no masks (segmentation) for "
                             "every object: score it with --task detect.")
        return truth
    return load_text_truth(path, task)


def score_predictions(task: str, truth: SpatialTruth | TextTruth,
                      predictions: list[Prediction]) -> ScoreReport:
    """Score ``predictions`` on the truth images they match by file name.

    Truth images with no prediction are left out (listed in ``not_predicted``), so a
    partial run scores what it did; an ``{"image", "error"}`` record counts as an empty
    answer, since the image was given and nothing came back.
    """
    names = ([i.file_name for i in truth.images] if isinstance(truth, SpatialTruth)
             else list(truth.answers))
    matched, unmatched = match_by_name(names, predictions)
    report = ScoreReport(task, len(matched), {}, not_predicted=[n for n in names
                                                                if n not in matched],
                         not_in_truth=unmatched,
                         failed=[p.image for p in matched.values() if p.error])
    if isinstance(truth, SpatialTruth):
        spatial = score_spatial(truth, matched, segmentation=task == "segment")
        report.metrics = spatial.metrics
        if spatial.unknown_labels:
            listed = ", ".join(f"{k!r} x{v}" for k, v in sorted(spatial.unknown_labels.items()))
            report.notes.append(f"labels that name no category were not scored: {listed}")
        if spatial.unusable_boxes:
            report.notes.append(
                f"{counted(spatial.unusable_boxes, 'predicted object')} had no usable box "
                "(4 finite numbers x0 <= x1, y0 <= y1): not scored")
        if spatial.boxes_as_masks:
            report.notes.append(f"{counted(spatial.boxes_as_masks, 'object')} had no decoded "
                                "mask; scored as a box instead")
    else:
        pairs = [(matched[n].answer, truth.answers[n]) for n in names if n in matched]
        metric = {"ask": ask_metrics, "ocr": ocr_metrics, "caption": caption_metrics}[task]
        report.metrics = metric(pairs)
    other = sorted({str(p.task) for p in matched.values() if p.task and p.task != task})
    if other:
        report.notes.insert(0, f"some predictions are answers to another task "
                               f"({', '.join(other)}), not {task}")
    if report.not_predicted:
        report.notes.append(f"{counted(len(report.not_predicted), 'labelled image')} had no "
                            "prediction: left out")
    if report.not_in_truth:
        report.notes.append(f"{counted(len(report.not_in_truth), 'prediction')} matched no "
                            "labelled image by file name")
    return report


def score_files(task: str, truth_path: Path, predictions_path: Path) -> ScoreReport:
    """``palidesk score``: read both files and score."""
    truth = load_truth(task, truth_path)
    return score_predictions(task, truth, load_predictions(predictions_path))


def format_table(report: ScoreReport) -> str:
    """The plain-text output: one metric per row, then the notes."""
    lines = [f"task: {report.task}    images scored: {report.images}", "",
             f"{'metric':<14}{'value':>10}", f"{'-' * 14}{'-' * 10}"]
    for name, value in report.metrics.items():
        shown = "n/a" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")
        arrow = "" if name not in HIGHER_IS_BETTER else (
            "  (higher is better)" if HIGHER_IS_BETTER[name] else "  (lower is better)")
        lines.append(f"{name:<14}{shown:>10}{arrow}")
    lines += [""] + [f"note: {note}" for note in report.notes] if report.notes else []
    return "\n".join(lines)
