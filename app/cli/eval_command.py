"""``palidesk eval``: run + score + compare quantizations on your images, with a report."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from app.cli import option_types


def add_eval_parser(sub: Any) -> None:
    """Register ``palidesk eval`` on the main parser's subcommands."""
    from app.evaluation.scored_tasks import SCORED_TASKS

    ev = sub.add_parser("eval", help="compare quantizations for quality and speed on your images")
    ev.add_argument("--model", required=True, metavar="NAME|DIR",
                    help="an installed model's name or a model folder")
    ev.add_argument("--quant", default="", help="e.g. F16,Q8_0,Q4_K_M (default: all installed)")
    ev.add_argument("--reference", help="quantization to agree with (default: best installed)")
    ev.add_argument("--task", required=True, choices=SCORED_TASKS)
    ev.add_argument("--truth", type=Path, help="COCO JSON, YOLO folder or JSONL (optional)")
    ev.add_argument("--images", type=Path, help="image folder (default: beside the truth)")
    ev.add_argument("--limit", type=option_types.whole_number(1, 2**31 - 1),
                    help="at most this many images")
    ev.add_argument("--out", type=Path, required=True,
                    help="folder for report.json/.html (new or empty)")
    ev.add_argument("--classes", default="", help='detect/segment: "cat; dog" (default: '
                    "the truth's categories)")
    ev.add_argument("--prompt", default="", help="ask: the question, when the truth has none")
    ev.add_argument("--caption-style", default="caption", choices=("cap", "caption", "describe"))
    ev.add_argument("--lang", default="en")
    ev.add_argument("--max-tokens", type=option_types.max_tokens, default=128,
                    help=f"1 to {option_types.MAX_NEW_TOKENS} (default 128)")
    ev.add_argument("--threads", type=option_types.threads)
    ev.add_argument("--gpu-layers", type=option_types.gpu_layers,
                    help="-1 = all (default: what the automatic choice would use)")
    ev.description = ("Run the task with each quantization on your images, score the "
                      "answers against labels (optional), measure how often each agrees "
                      "with the best one and how fast it is; writes report.json, "
                      "report.html and the predictions into --out (a new or empty folder).")


def run_eval_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from app.cli.progress_printer import ProgressPrinter
    from app.evaluation.eval_images import collect_images
    from app.evaluation.eval_run import EvalPlan, plan_quants, run_eval
    from app.evaluation.report_html import write_html
    from app.evaluation.score import load_truth
    from app.model_files.model_folder import ModelFolder
    from app.progress import CancelFlag, ProgressEvent
    from app.session.model_resolver import resolve_model

    args.model = resolve_model(args.model)
    folder = ModelFolder(args.model)
    quants, reference = plan_quants(folder, args.quant.split(","), args.reference)
    from app.cli.eval_output import check_images_folder

    check_images_folder(args.images)
    truth = load_truth(args.task, args.truth) if args.truth is not None else None
    images = collect_images(args.task, truth, args.truth, args.images, args.limit,
                            args.classes, args.prompt, args.caption_style, args.lang)
    from app.cli.eval_output import check_out_folder

    check_out_folder(args.out)  # before any model runs, not after an hour of it
    plan = EvalPlan(args.model, args.task, quants, reference, images, args.out, truth,
                    args.truth, args.max_tokens, args.threads, args.gpu_layers)
    noun = "image" if len(images) == 1 else "images"
    print(f"{len(images)} {noun} x {', '.join(quants)} (reference {reference})",
          file=sys.stderr)
    cancel = CancelFlag()

    def stop(_signum: int, _frame: object) -> None:
        # First Ctrl+C: finish cleanly and keep what is done; a second one stops at once.
        cancel.cancel()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nstopping: the report will cover what is done (Ctrl+C again to quit now)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, stop)
    # A terminal gets tqdm's bar; a log (no terminal) plain lines, never a "\r".
    bar = tqdm(total=len(images) * len(quants), unit="image", file=sys.stderr,
               dynamic_ncols=True, disable=not sys.stderr.isatty())
    printer = None if sys.stderr.isatty() else ProgressPrinter(sys.stderr, interval_s=5.0)

    def progress(event: ProgressEvent) -> None:
        if printer is not None:
            printer(event)
            return
        bar.set_description(event.stage)
        bar.n = event.done
        bar.refresh()

    try:
        report = run_eval(plan, progress, cancel)
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    html_path = write_html(report, args.out)
    print(_summary(report))
    print(f"report: {args.out / 'report.json'}\n        {html_path}", file=sys.stderr)
    return 130 if report["interrupted"] else 0


def _summary(report: dict[str, Any]) -> str:
    """One row per quantization: metrics, agreement and speed."""
    lines = []
    for quant, entry in report["quants"].items():
        speed = entry.get("speed") or {}
        agreement = entry.get("agreement") or {}
        metrics = entry.get("metrics") or {}
        shown = [f"{k} {v:.3f}" for k, v in metrics.items() if v is not None]
        if agreement.get("share") is not None and quant != report["reference"]:
            shown.append(f"agrees {agreement['share'] * 100:.0f}% with {report['reference']}")
        if speed.get("decode_tokens_per_s"):
            shown.append(f"{speed['decode_tokens_per_s']:.1f} tok/s")
        if speed.get("first_token_s") is not None:
            shown.append(f"first token {speed['first_token_s']:.2f} s")
        lines.append(f"{quant:<8} {entry['images_done']:>4} images  " + " · ".join(shown))
    return "\n".join(lines)
