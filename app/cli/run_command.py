"""``palidesk run``: stream a task's answer for each image to the terminal (or JSON)."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.interrupt import cancel_on_interrupt
from app.engine.engine import Engine, EngineConfig
from app.engine.events import GenerationOptions, TokenEvent
from app.errors import ImageError
from app.models.model_folder import ModelFolder
from app.progress import CancelFlag
from app.tasks import CaptionStyle, TaskKind, TaskRequest, build_prompt, parse_classes
from app.tasks.task_runner import ObjectEvent, TaskResult, run_task


def request_from_args(args: argparse.Namespace) -> TaskRequest:
    kind = TaskKind(args.task)
    return TaskRequest(
        kind=kind,
        lang=args.lang,
        caption_style=CaptionStyle(args.caption_style),
        question=args.prompt if kind == TaskKind.ASK else None,
        answer=args.prompt if kind == TaskKind.QUESTION else None,
        classes=parse_classes(args.classes),
        prompt=args.prompt if kind == TaskKind.CUSTOM else None,
    )


def run_command(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    build_prompt(request)  # refuse bad arguments before loading anything
    pair = ModelFolder(args.model).resolve(args.quant)
    options = GenerationOptions(
        max_new_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, seed=args.seed,
    )
    failures = 0
    with cancel_on_interrupt() as cancel:
        engine = Engine()
        try:
            engine.load(pair, EngineConfig(gpu_layers=args.gpu_layers, threads=args.threads,
                                           max_new_tokens_limit=max(512, args.max_tokens)))
            if not args.json:
                print(f"model: {pair.folder.name} ({pair.quant})", file=sys.stderr)
            for image in args.images:
                cancel.check("The run")
                try:
                    _run_one(engine, str(image), request, options, args.json, cancel)
                except ImageError as exc:
                    failures += 1
                    if args.json:
                        print(json.dumps({"image": str(image), "error": str(exc)}), flush=True)
                    else:
                        print(f"error: {exc}", file=sys.stderr)
        finally:
            engine.close()
    return 1 if failures else 0


def _run_one(engine: Engine, image: str, request: TaskRequest, options: GenerationOptions,
             as_json: bool, cancel: CancelFlag) -> None:
    """Stream one image's answer; raises Cancelled (printing no result) on Ctrl+C."""
    if not as_json:
        print(f"{image}:", file=sys.stderr)
    for event in run_task(engine, image, request, options, cancel):
        if isinstance(event, TaskResult):
            # The answer of an interrupted image is not a result: print none.
            cancel.check("The run")
        if as_json:
            if isinstance(event, TaskResult):
                record = event.to_json()
                record["image"] = image
                print(json.dumps(record, ensure_ascii=False), flush=True)
            continue
        if isinstance(event, TokenEvent):
            if not engine.is_end(event.token_id):  # the end marker is not part of the answer
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, ObjectEvent):
            pass  # listed once the answer is complete, below
        else:
            sys.stdout.write("\n")
            for obj in event.objects:
                x0, y0, x1, y1 = obj.box
                print(f"  {obj.label}: ({x0:.0f}, {y0:.0f}) - ({x1:.0f}, {y1:.0f})")
            t = event.result.timings
            print(
                f"  [{len(event.result.tokens)} tokens, image "
                f"{'cached' if t.image_cached else f'{t.image_encode_s:.2f} s'}, first token "
                f"{t.first_token_s:.2f} s, {t.decode_tokens_per_s:.1f} tokens/s]",
                file=sys.stderr,
            )
