"""The task and generation options that ``palidesk run`` and ``palidesk batch`` share,
with the ranges of ``option_types`` (the same limits as the window's settings)."""

from __future__ import annotations

import argparse

from app.cli import option_types
from app.settings.validation import MAX_NEW_TOKENS
from app.tasks import CaptionStyle, TaskKind
from app.tasks.languages import LANGUAGES


def add_task_options(parser: argparse.ArgumentParser, gpu_layers_default: int | None = 0,
                     gpu_layers_help: str = "-1 = all (GPU builds only)") -> None:
    parser.add_argument("--task", required=True, choices=[k.value for k in TaskKind])
    parser.add_argument("--prompt", help="question (ask), answer (question) or custom prompt")
    parser.add_argument("--lang", default="en", help=f"one of: {' '.join(LANGUAGES)}")
    parser.add_argument("--caption-style", choices=[s.value for s in CaptionStyle],
                        default=CaptionStyle.CAPTION.value,
                        help="cap = short, caption = COCO-style, describe = detailed")
    parser.add_argument("--classes", default="", help='objects to find, e.g. "cat;dog"')
    parser.add_argument("--max-tokens", type=option_types.max_tokens, default=128,
                        help=f"1 to {MAX_NEW_TOKENS} (default 128)")
    parser.add_argument("--threads", type=option_types.threads,
                        help="CPU threads (default: the CPUs this process may use)")
    parser.add_argument("--gpu-layers", type=option_types.gpu_layers,
                        default=gpu_layers_default, help=gpu_layers_help)
    parser.add_argument("--temperature", type=option_types.temperature, default=0.0,
                        help="0 = greedy (default)")
    parser.add_argument("--top-k", type=option_types.top_k, default=0)
    parser.add_argument("--top-p", type=option_types.top_p, default=1.0)
    parser.add_argument("--seed", type=option_types.seed, default=0,
                        help="sampling seed; -1 = a new random seed each run")
