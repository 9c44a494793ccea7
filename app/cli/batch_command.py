"""``palidesk batch``: label a whole dataset into a resumable JSONL, here or on Ray."""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli import option_types
from app.cli.interrupt import cancel_on_interrupt
from app.cli.task_options import add_task_options
from app.tasks import TaskKind

# Ranges for the batch's own numbers, in the same words as every other option.
_positive_int = option_types.whole_number(1, 2**31 - 1)
_positive_float = option_types.number(0.0, 1e6, low_open=True)
_non_negative_float = option_types.number(0.0, 1e6)

if TYPE_CHECKING:  # the parser is built on every start: the batch modules load lazily
    from app.batch.job import BatchJob
    from app.batch.progress_bar import BatchProgress
    from app.batch.ray_run import RaySettings
    from app.batch.summary import BatchSummary


def add_batch_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``batch`` on the top-level subparsers (kept light: nothing heavy imported)."""
    from app.batch.export import EXPORT_FORMATS

    batch = sub.add_parser(
        "batch", help="label a whole dataset into a resumable JSONL (optionally on Ray)",
        description="Run one task over every image of folders (recursive), glob patterns "
                    "or text files of paths; one JSON line per image (and set of options) "
                    "in --out.")
    batch.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="folder, image, glob pattern ('data/**/*.jpg'), or a text file "
                            "of image paths")
    batch.add_argument("--model", required=True, metavar="NAME|DIR",
                       help="an installed model's name or a model folder")
    batch.add_argument("--quant", help="text model type (case-insensitive); default: best")
    add_task_options(batch, gpu_layers_default=None,
                     gpu_layers_help="-1 = all (GPU builds only); default 0, or -1 with Ray GPUs")
    batch.add_argument("--mask-decoder", type=Path, metavar="FILE",
                       help="vae-oid.npz for segment masks (default: the installed one, see "
                            "`palidesk masks status`); Ray workers must see the same path")
    batch.add_argument("--out", type=Path, required=True, metavar="RESULTS.jsonl",
                       help="results file: one JSON line per image, appended as they finish")
    batch.add_argument("--resume", action="store_true",
                       help="continue --out: skip images whose result it already holds for "
                            "these options (other options or a higher --max-tokens than an "
                            "answer was cut at: run again)")
    batch.add_argument("--limit", type=_positive_int, metavar="N",
                       help="only the first N images of the inputs (a trial run)")
    batch.add_argument("--export", choices=EXPORT_FORMATS,
                       help="afterwards, export this job's results (coco: RESULTS.coco.json, "
                            "yolo: RESULTS-yolo/, captions: a .txt beside each image)")
    batch.add_argument("--export-to", type=Path, metavar="PATH",
                       help="where --export writes coco/yolo (default: beside --out)")
    batch.add_argument("--overwrite-captions", action="store_true",
                       help="let --export captions replace existing .txt files")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    ray = batch.add_argument_group("Ray (pip install 'palidesk[cluster]')")
    ray.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                     help="run on Ray: 'local' starts Ray on this machine; 'auto' (the "
                          "default) joins the cluster started by `ray start`; or an "
                          "address such as ray://head:10001")
    ray.add_argument("--ray-workers", type=_positive_int, metavar="N",
                     help="engines to run at once (default: as many as the cluster's "
                          "CPUs or GPUs allow)")
    ray.add_argument("--ray-cpus-per-worker", type=_positive_float, metavar="N",
                     help="CPUs each worker reserves and uses as threads (default: "
                          "--threads, else 1 with GPUs, 2 without)")
    ray.add_argument("--ray-gpus-per-worker", type=_non_negative_float, default=0.0,
                     metavar="N", help="GPUs each worker reserves (e.g. 1, or 0.5 to "
                                       "share one); implies --gpu-layers -1")


def run_batch_command(args: argparse.Namespace) -> int:
    from app.batch.inputs import (
        IMAGE_SUFFIXES,
        BatchInputError,
        check_inputs,
        count_image_paths,
        iter_image_paths,
    )
    from app.batch.job import BatchJob
    from app.batch.progress_bar import BatchProgress
    from app.batch.results_log import ResultsLog
    from app.batch.summary import BatchSummary
    from app.cli.run_command import options_from_args, request_from_args
    from app.session.model_resolver import resolve_model

    check_inputs(args.inputs)
    _check_export(args)
    gpu_layers = args.gpu_layers
    if gpu_layers is None:
        gpu_layers = -1 if args.ray and args.ray_gpus_per_worker > 0 else 0
    request = request_from_args(args)
    decoder = _mask_decoder(args, request.kind)
    job = BatchJob.create(
        str(resolve_model(args.model)), args.quant, request, options_from_args(args),
        gpu_layers=gpu_layers, threads=args.threads,
        mask_decoder=None if decoder is None else str(decoder.resolve()),
    )
    print(f"model: {job.model.name} ({job.model.quant}); prompt: {job.prompt!r}",
          file=sys.stderr)
    ray_settings = _ray_settings(args) if args.ray else None
    total = count_image_paths(args.inputs)
    if total == 0:
        raise BatchInputError(
            f"No images found in {' '.join(args.inputs)} (looked for files ending in "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}).")
    total = total if args.limit is None else min(total, args.limit)
    summary = BatchSummary()
    with ResultsLog(args.out, resume=args.resume, job=job) as log:
        if log.resumed_records:
            torn = "; a line cut off by an interrupted run was dropped" \
                if log.dropped_torn_line else ""
            print(f"resuming: {log.resumed_records} records already in {args.out}{torn}",
                  file=sys.stderr)
        if log.other_options_records:
            # The window's rule: an answer made with other options is never kept as this
            # run's; those images run again and their new lines are appended.
            # Their images may still be done: by another line made with these options.
            print(f"{log.other_options_records} of them were made with other options "
                  "(sampling, seed, or a max-tokens limit they were cut at): they do not "
                  "count as done for this run; an image with no answer made with these "
                  "options runs again", file=sys.stderr)
        progress = BatchProgress(total, enabled=False if args.no_progress else None)
        start = time.monotonic()
        try:
            if ray_settings is not None:
                from app.batch.ray_run import run_on_ray

                run_on_ray(_job_for_ray(job, ray_settings), list(args.inputs), args.limit, total,
                           ray_settings, log, summary, progress)
            else:
                from app.batch.local_run import run_local

                images = islice(iter_image_paths(args.inputs), args.limit)
                with cancel_on_interrupt() as cancel:  # Ctrl+C: stop within a token
                    run_local(job, images, log, summary, progress, cancel)
        except BaseException:
            progress.close()
            if summary.touched:  # say what was finished before the error or Ctrl+C
                _print_summary(progress, summary, start, args.out)
            raise
        _print_summary(progress, summary, start, args.out)
    if args.export:
        _export(args, job)
    return 1 if summary.failed else 0


def _mask_decoder(args: argparse.Namespace, kind: TaskKind) -> Path | None:
    """The core's choice of mask decoder, as for `run` and the window; checked here so a
    bad file is told before any model loads."""
    from app.session.load_plan import choose_mask_decoder

    found, problem = choose_mask_decoder(kind == TaskKind.SEGMENT,
                                         getattr(args, "models_dir", None), args.mask_decoder)
    if found is not None:
        from app.tasks.object_masks import check_decoder

        check_decoder(found)
    elif problem:
        print(f"note: {problem} Segment gives boxes without masks; get it with "
              "`palidesk masks pull`.", file=sys.stderr)
    return found


def _print_summary(progress: BatchProgress, summary: BatchSummary, start: float,
                   out: Path) -> None:
    progress.close()
    summary.seconds = time.monotonic() - start
    for line in summary.lines(str(out)):
        print(line, file=sys.stderr)


def _ray_settings(args: argparse.Namespace) -> RaySettings:
    """The Ray options, checked before the results file is touched (and Ray imported,
    so a missing extra is said at once)."""
    from app.batch.ray_run import RaySettings, check_ray_settings

    gpus = args.ray_gpus_per_worker
    cpus = args.ray_cpus_per_worker or args.threads or (1 if gpus > 0 else 2)
    settings = RaySettings(address=args.ray, workers=args.ray_workers,
                           cpus_per_worker=cpus, gpus_per_worker=gpus)
    check_ray_settings(settings)
    return settings


def _job_for_ray(job: BatchJob, settings: RaySettings) -> BatchJob:
    # Each worker's engine uses the CPUs it reserved, unless --threads says otherwise.
    return replace(job, threads=job.threads or max(1, math.floor(settings.cpus_per_worker)))


def _check_export(args: argparse.Namespace) -> None:
    """Refuse an export that would come out empty or meaningless, before the batch."""
    from app.errors import ExportError

    spatial = TaskKind(args.task).is_spatial
    if args.export in ("coco", "yolo") and not spatial:
        raise ExportError(f"--export {args.export} writes boxes: it needs --task detect or "
                          "segment.")
    if args.export == "captions" and spatial:
        raise ExportError("--export captions writes text answers; for detect or segment "
                          "use --export coco or yolo.")
    if args.export_to is not None and args.export in (None, "captions"):
        raise ExportError("--export-to is where --export coco or yolo writes; "
                          + ("captions are always written beside each image." if args.export
                             else "add --export coco or --export yolo."))
    if args.export:
        from app.batch.export import check_destination, default_destination

        check_destination(args.export, args.export_to or default_destination(args.out,
                                                                             args.export))


def _export(args: argparse.Namespace, job: BatchJob) -> None:
    from app.batch.export import default_destination, export_results

    destination = args.export_to or default_destination(args.out, args.export)
    result = export_results(args.out, job, args.export, destination,
                            overwrite=args.overwrite_captions)
    where = f"to {destination}" if destination is not None else "beside the images"
    from app.counted import counted

    print(f"exported {args.export}: {counted(len(result.written), 'file')} written {where}"
          + (f", {len(result.skipped)} left as they were" if result.skipped else ""),
          file=sys.stderr)
