"""``--export``: the batch's records through the same writers as File › Export Results.

The writers take history records; batch lines carry the same fields (``image``,
``image_sha256``, ``image_size``, ``objects``...), so each line becomes one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.export import ExportSummary, export_captions_beside_images, export_coco, export_yolo
from app.history.history_record import HistoryRecord, object_from_dict

if TYPE_CHECKING:  # the job module loads llama.cpp; the CLI parser imports this one
    from app.batch.job import BatchJob

EXPORT_FORMATS = ("coco", "yolo", "captions")


def default_destination(results: Path, fmt: str) -> Path | None:
    """Where an export goes unless told: beside the results file (captions: beside
    each image, so None)."""
    if fmt == "coco":
        return results.with_name(results.stem + ".coco.json")
    if fmt == "yolo":
        return results.with_name(results.stem + "-yolo")
    return None


def check_destination(fmt: str, destination: Path | None) -> None:
    """Refuse a destination that exists and is not what the format writes: a regular
    file for coco, a folder for yolo. A device node (/dev/full) or a FIFO must never be
    replaced by the export's file, nor a file by a folder."""
    from app.errors import ExportError

    if destination is None or not destination.exists():
        return
    if fmt == "coco" and not destination.is_file():
        kind = "a folder" if destination.is_dir() else "not a regular file (a device or pipe)"
        raise ExportError(f"--export-to {destination} is {kind}; coco writes one .json file "
                          "there: give a file name.")
    if fmt == "yolo" and not destination.is_dir():
        raise ExportError(f"--export-to {destination} is not a folder; yolo writes a folder "
                          "of label files: give a folder name.")


def export_results(results: Path, job: BatchJob, fmt: str, destination: Path | None,
                   overwrite: bool = False) -> ExportSummary:
    """Export the records of ``job`` (its prompt, model and quantization) in ``results``.

    Failed images are left out. Captions never replace an existing ``.txt`` unless
    ``overwrite``. Raises ``ExportError``.
    """
    check_destination(fmt, destination)
    records = list(_job_records(results, job))
    if fmt == "coco":
        assert destination is not None
        return export_coco(records, destination)
    if fmt == "yolo":
        assert destination is not None
        return export_yolo(records, destination)
    return export_captions_beside_images(records, overwrite=lambda _path: overwrite,
                                         tasks=(job.request.kind.value,))


def _job_records(results: Path, job: BatchJob) -> Iterator[HistoryRecord]:
    """The job's answers, one per image: the same prompt, model, quantization and options,
    within the job's max-tokens limit (``done_rule``); of several, the last written."""
    from app.session.done_rule import GREEDY, record_answers

    model = job.model
    chosen: dict[str, dict[str, Any]] = {}
    with results.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if ("error" in record or record.get("prompt") != job.prompt
                    or record.get("model_id") != model.pair_id
                    or record.get("quantization") != model.quant
                    or (record.get("options_key") or GREEDY) != job.options_key
                    or not record_answers(record, job.options.max_new_tokens)):
                continue
            chosen.pop(record["image"], None)  # keeps the order of the last writes
            chosen[record["image"]] = record
    for record in chosen.values():
        yield history_record(record)


def history_record(record: dict[str, Any]) -> HistoryRecord:
    """A batch line as the history keeps a result."""
    width, height = record["image_size"]
    return HistoryRecord(
        image_path=record["image"],
        image_sha256=record.get("image_sha256") or "",
        image_width=int(width),
        image_height=int(height),
        task=record["task"],
        prompt=record["prompt"],
        model=record.get("model", ""),
        quantization=record.get("quantization", ""),
        text=record["text"],
        objects=[object_from_dict(obj) for obj in record["objects"]],
        timings=record.get("timings", {}),
        stop_reason=record.get("stop_reason", ""),
        tokens=record.get("tokens", []),
        pair_id=record.get("model_id", ""),
        options_key=record.get("options_key") or "greedy",
        max_new_tokens=int(record.get("max_new_tokens") or 0),
    )
