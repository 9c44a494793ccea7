"""``palidesk run``: stream a task's answer for each image to the terminal (or JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.interrupt import cancel_on_interrupt
from app.engine.engine import Engine
from app.engine.events import GenerationOptions, TokenEvent
from app.errors import ImageError
from app.json_line import json_line
from app.progress import CancelFlag
from app.tasks import TaskKind, TaskRequest, build_prompt
from app.tasks.task_options import request_from_options
from app.tasks.task_runner import ObjectEvent, TaskResult, run_task


def request_from_args(args: argparse.Namespace) -> TaskRequest:
    """The task options' request (the server's /v1/run builds it the same way)."""
    return request_from_options(args.task, args.prompt, args.lang, args.caption_style,
                                args.classes)


def options_from_args(args: argparse.Namespace) -> GenerationOptions:
    """The generation options of ``--max-tokens``, ``--temperature``... (run and batch)."""
    return GenerationOptions(max_new_tokens=args.max_tokens, temperature=args.temperature,
                             top_k=args.top_k, top_p=args.top_p, seed=args.seed)


def run_command(args: argparse.Namespace) -> int:
    from app.session.load_plan import plan_load
    from app.session.model_resolver import resolve_model

    request = request_from_args(args)
    build_prompt(request)  # refuse bad arguments before loading anything
    mask_decoder = _mask_decoder(args, request.kind)
    if mask_decoder is not None:
        from app.tasks.object_masks import check_decoder

        check_decoder(mask_decoder)  # a bad --mask-decoder file, told before the model loads
    options = options_from_args(args)
    plan = plan_load(resolve_model(args.model), args.quant, args.gpu_layers, args.threads,
                     options.max_new_tokens, choose_quant=False)
    pair = plan.pair
    failures = 0
    with cancel_on_interrupt() as cancel:
        engine = Engine()
        try:
            engine.load(pair, plan.config)
            if not args.json:
                print(f"model: {pair.folder.name} ({pair.quant})", file=sys.stderr)
            for image in args.images:
                cancel.check("The run")
                try:
                    _run_one(engine, str(image), request, options, args.json, cancel,
                             mask_decoder)
                except ImageError as exc:
                    failures += 1
                    if args.json:
                        print(json.dumps({"image": str(image), "error": str(exc)}), flush=True)
                    else:
                        print(f"error: {exc}", file=sys.stderr)
        finally:
            engine.close()
    return 1 if failures else 0


def _mask_decoder(args: argparse.Namespace, kind: TaskKind) -> Path | None:
    """The decoder for segment masks: the core's choice (``--mask-decoder``, else the
    installed one, else None with a note)."""
    if kind != TaskKind.SEGMENT:
        return None  # the settings file need not even be read
    from app.session.load_plan import choose_mask_decoder

    found, problem = choose_mask_decoder(True, getattr(args, "models_dir", None),
                                         args.mask_decoder)
    if problem and not args.json:
        print(f"note: {problem} Segment gives boxes without masks; get it with "
              "`palidesk masks pull`.", file=sys.stderr)
    return found


def _run_one(engine: Engine, image: str, request: TaskRequest, options: GenerationOptions,
             as_json: bool, cancel: CancelFlag, mask_decoder: Path | None = None) -> None:
    """Stream one image's answer; raises Cancelled (printing no result) on Ctrl+C."""
    if not as_json:
        print(f"{image}:", file=sys.stderr)
    for event in run_task(engine, image, request, options, cancel,
                          mask_decoder=mask_decoder):
        if isinstance(event, TaskResult):
            # The answer of an interrupted image is not a result: print none.
            cancel.check("The run")
        if as_json:
            if isinstance(event, TaskResult):
                record = event.to_json()
                record["image"] = image
                print(json_line(record), flush=True)  # valid UTF-8 whatever the name
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
                area = "" if obj.mask is None else f", mask {obj.mask.area} px"
                print(f"  {obj.label}: ({x0:.0f}, {y0:.0f}) - ({x1:.0f}, {y1:.0f}){area}")
            t = event.result.timings
            print(
                f"  [{len(event.result.tokens)} tokens, image "
                f"{'cached' if t.image_cached else f'{t.image_encode_s:.2f} s'}, first token "
                f"{t.first_token_s:.2f} s, {t.decode_tokens_per_s:.1f} tokens/s]",
                file=sys.stderr,
            )
