"""``palidesk score``: metrics for a ``palidesk run --json`` output against labelled images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_score_parser(sub: Any) -> None:
    """Register ``palidesk score`` on the main parser's subcommands."""
    from app.evaluation.scored_tasks import SCORED_TASKS  # light: no pycocotools

    score = sub.add_parser(
        "score", help="score predictions (palidesk run --json output) against labelled images",
        description="Compute the standard metrics (mAP, CER/WER, BLEU/chrF, exact match, "
                    "ANLS) of answers that `palidesk run --json` wrote, against labels "
                    "matched by image file name. Nothing is run.")
    score.add_argument("--task", required=True, choices=SCORED_TASKS)
    score.add_argument("--truth", type=Path, required=True,
                       help="COCO JSON, a YOLO folder, or a JSONL of answers/texts")
    score.add_argument("--predictions", type=Path, required=True, metavar="RUN.jsonl",
                       help="what `palidesk run --json` wrote")
    score.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run_score(args: argparse.Namespace) -> int:
    from app.evaluation.score import format_table, score_files

    report = score_files(args.task, args.truth, args.predictions)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(format_table(report))
    return 0
