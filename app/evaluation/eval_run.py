"""``eval``: run a task with several quantizations, score them, and compare them.

For each quantization a fresh Engine loads the pair, answers every image (written as
``predictions-<QUANT>.jsonl``, the same lines as ``palidesk run --json``), and its speed
and peak memory are measured on the way. Then each is scored against the truth (if any)
and compared with the reference quantization. Cancelling keeps every finished image.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.engine.context_size import engine_config
from app.engine.engine import Engine
from app.engine.events import GenerationOptions
from app.errors import ImageError, ModelFolderError
from app.evaluation.agreement import agreement, boxes_agree, token_difference
from app.evaluation.eval_images import EvalImage
from app.evaluation.peak_memory import PeakMemory
from app.evaluation.predictions import Prediction, prediction_from_record
from app.evaluation.score import score_predictions
from app.evaluation.truth import SpatialTruth, TextTruth
from app.model_files.model_folder import QUALITY_ORDER, ModelFolder
from app.models.measured_speed import QuantSpeed, machine_id, record_speed
from app.progress import CancelFlag, ProgressCallback, ProgressEvent, no_progress
from app.tasks.task_runner import TaskResult, run_task

REPORT_FORMAT = 1
DISAGREEMENTS_SHOWN = 6


@dataclass
class EvalPlan:
    """What to run: ``quants`` in order, the reference first."""

    model_dir: Path
    task: str
    quants: list[str]
    reference: str
    images: list[EvalImage]
    out_dir: Path
    truth: SpatialTruth | TextTruth | None = None
    truth_path: Path | None = None
    max_new_tokens: int = 128
    threads: int | None = None
    gpu_layers: int | None = None  # None: what the automatic choice would use


@dataclass
class QuantRun:
    quant: str
    predictions: dict[str, Prediction] = field(default_factory=dict)  # image path -> answer
    speed: QuantSpeed | None = None
    complete: bool = False


def plan_quants(folder: ModelFolder, wanted: list[str],
                reference: str | None = None) -> tuple[list[str], str]:
    """Check the quantizations exist; the reference (default: the best installed one) is
    run first, added if it was not asked for."""
    installed = folder.text_types()
    wanted = list(dict.fromkeys(q.strip().upper() for q in wanted if q.strip())) or installed
    reference = (reference or installed[0]).upper()
    missing = [q for q in [*wanted, reference] if q not in installed]
    not_types = [q for q in missing if q not in QUALITY_ORDER]
    if not_types:  # no `quantize --type` could make these: do not suggest one
        raise ModelFolderError(
            f"{not_types[0]!r} is not a quantization type; {folder.path.name} holds: "
            f"{', '.join(installed)}.")
    if missing:
        raise ModelFolderError(
            f"{folder.path.name} has no {', '.join(missing)} text file; installed: "
            f"{', '.join(installed)}. Create it with `palidesk quantize {folder.path} "
            f"--type {missing[0]}`.")
    ordered = [reference, *sorted((q for q in wanted if q != reference),
                                  key=lambda q: QUALITY_ORDER.index(q)
                                  if q in QUALITY_ORDER else len(QUALITY_ORDER))]
    return ordered, reference


def run_eval(plan: EvalPlan, progress: ProgressCallback = no_progress,
             cancel: CancelFlag | None = None) -> dict[str, Any]:
    """Run the plan, write report.json (and the predictions), and return the report."""
    cancel = cancel or CancelFlag()
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    folder = ModelFolder(plan.model_dir)
    runs: list[QuantRun] = []
    total = len(plan.quants) * len(plan.images)
    for quant in plan.quants:
        if cancel.cancelled:
            break
        runs.append(_run_quant(plan, folder, quant, len(runs) * len(plan.images), total,
                               progress, cancel))
    report = build_report(plan, runs, interrupted=cancel.cancelled)
    for run in runs:
        if run.speed is not None:
            summary = report["quants"][run.quant].get("agreement")
            if summary and run.quant != plan.reference and summary["share"] is not None:
                run.speed.agreement = {"reference": plan.reference, "share": summary["share"],
                                       "images": summary["images"], "task": plan.task}
            try:
                record_speed(plan.model_dir, run.quant, run.speed)
            except OSError as exc:  # a read-only model folder: the report still has them
                report["speed_not_kept"] = f"The figures could not be kept with the model: {exc}"
    (plan.out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False),
                                              encoding="utf-8")
    return report


def _run_quant(plan: EvalPlan, folder: ModelFolder, quant: str, done_before: int, total: int,
               progress: ProgressCallback, cancel: CancelFlag) -> QuantRun:
    run = QuantRun(quant)
    pair = folder.resolve(quant)
    gpu_layers = plan.gpu_layers
    if gpu_layers is None:  # the automatic choice, as every face makes it
        from app.models.fit_choice import auto_gpu_layers

        gpu_layers = auto_gpu_layers(folder, quant)
    options = GenerationOptions(max_new_tokens=plan.max_new_tokens)
    target = plan.out_dir / f"predictions-{quant}.jsonl"
    first_tokens: list[float] = []
    decode_tokens = 0
    decode_seconds = 0.0
    cached_first: float | None = None
    engine = Engine()
    progress(ProgressEvent(quant, done_before, total, f"loading {quant}"))
    with PeakMemory() as peak, target.open("w", encoding="utf-8") as out:
        started = time.perf_counter()
        engine.load(pair, engine_config(gpu_layers, plan.threads, plan.max_new_tokens))
        load_s = time.perf_counter() - started
        try:
            for index, image in enumerate(plan.images):
                if cancel.cancelled:
                    break
                record = _answer(engine, image, options, cancel)
                if record is None:
                    break  # cancelled mid-answer: an unfinished answer is not kept
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
                run.predictions[str(image.path)] = prediction_from_record(record)
                timings = record.get("timings") or {}
                if timings and not timings.get("image_cached"):
                    first_tokens.append(float(timings["first_token_s"]))
                tokens = len(record.get("tokens") or [])
                if tokens > 1 and timings.get("decode_s"):
                    decode_tokens += tokens - 1
                    decode_seconds += float(timings["decode_s"])
                progress(ProgressEvent(quant, done_before + index + 1, total,
                                       f"{quant}: {image.path.name}"))
            if run.predictions and not cancel.cancelled:
                # The first image again: its embedding is cached, so this is prefill only.
                again = _answer(engine, plan.images[0], GenerationOptions(max_new_tokens=1),
                                cancel)
                if again is not None and again.get("timings"):
                    cached_first = float(again["timings"]["first_token_s"])
        finally:
            engine.close()
    run.complete = len(run.predictions) == len(plan.images)
    if run.predictions:
        run.speed = QuantSpeed(
            decode_tokens_per_s=decode_tokens / decode_seconds if decode_seconds else None,
            first_token_s=statistics.median(first_tokens) if first_tokens else None,
            first_token_cached_s=cached_first, load_s=load_s,
            peak_rss_bytes=peak.rss_bytes, peak_vram_bytes=peak.vram_bytes,
            gpu_layers=engine.config.gpu_layers, images=len(run.predictions))
    return run


def _answer(engine: Engine, image: EvalImage, options: GenerationOptions,
            cancel: CancelFlag) -> dict[str, Any] | None:
    """One ``run --json`` line for ``image``; None when cancelled before it finished."""
    try:
        for event in run_task(engine, str(image.path), image.request, options, cancel):
            if isinstance(event, TaskResult):
                if event.result.stop_reason == "cancelled":
                    return None
                record = event.to_json()
                record["image"] = str(image.path)
                return record
    except ImageError as exc:
        return {"image": str(image.path), "error": str(exc)}
    return None


# --- the report ----------------------------------------------------------------------------


def build_report(plan: EvalPlan, runs: list[QuantRun], interrupted: bool) -> dict[str, Any]:
    """report.json's content: per quantization its metrics, agreement and speed."""
    spatial = plan.task in ("detect", "segment")
    by_quant = {run.quant: run for run in runs}
    reference = by_quant.get(plan.reference)
    quants: dict[str, Any] = {}
    for run in runs:
        entry: dict[str, Any] = {
            "predictions": f"predictions-{run.quant}.jsonl",
            "images_done": len(run.predictions), "complete": run.complete,
            "speed": _speed_json(run.speed), "metrics": None, "score": None,
            "agreement": None,
        }
        if plan.truth is not None and run.predictions:
            score = score_predictions(plan.task, plan.truth, list(run.predictions.values()))
            entry["metrics"], entry["score"] = score.metrics, score.to_json()
        if reference is not None:
            entry["agreement"] = agreement(plan.reference, reference.predictions,
                                           run.predictions, spatial).to_json()
        quants[run.quant] = entry
    return {
        "format": REPORT_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": plan.model_dir.name, "model_dir": str(plan.model_dir),
        "task": plan.task, "prompt": _prompt(plan),
        "truth": str(plan.truth_path) if plan.truth_path else None,
        "images": len(plan.images), "reference": plan.reference,
        "quants_planned": plan.quants, "interrupted": interrupted,
        "machine": machine_id(), "max_new_tokens": plan.max_new_tokens,
        "quants": quants,
        "disagreements": _disagreements(plan, runs, spatial),
    }


def _prompt(plan: EvalPlan) -> str | None:
    from app.tasks.prompts import build_prompt

    return build_prompt(plan.images[0].request) if plan.images else None


def _speed_json(speed: QuantSpeed | None) -> dict[str, Any] | None:
    if speed is None:
        return None
    return {"load_s": speed.load_s, "first_token_s": speed.first_token_s,
            "first_token_cached_s": speed.first_token_cached_s,
            "decode_tokens_per_s": speed.decode_tokens_per_s,
            "peak_rss_bytes": speed.peak_rss_bytes, "peak_vram_bytes": speed.peak_vram_bytes,
            "gpu_layers": speed.gpu_layers, "images": speed.images}


def _disagreements(plan: EvalPlan, runs: list[QuantRun], spatial: bool) -> list[dict[str, Any]]:
    """The images where the quantizations differ most from the reference, worst first."""
    by_quant = {run.quant: run for run in runs}
    reference = by_quant.get(plan.reference)
    if reference is None or len(runs) < 2:
        return []
    ranked = []
    for image, ref in reference.predictions.items():
        others = {run.quant: run.predictions[image] for run in runs
                  if run.quant != plan.reference and image in run.predictions}
        if not others or ref.error:
            continue
        difference = max(token_difference(ref, p) for p in others.values())
        boxes_differ = spatial and any(not boxes_agree(ref.objects, p.objects)
                                       for p in others.values())
        if difference > 0 or boxes_differ:
            answers = {plan.reference: ref, **others}
            ranked.append((boxes_differ, difference, image, answers))
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [{"image": image, "token_difference": round(difference, 4),
             "boxes_differ": boxes_differ,
             "answers": {q: {"text": p.answer, "objects": p.objects, "error": p.error}
                         for q, p in answers.items()}}
            for boxes_differ, difference, image, answers in ranked[:DISAGREEMENTS_SHOWN]]
