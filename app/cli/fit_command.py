"""``palidesk fit``: which quantization and how many GPU layers suit this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings.validation import MAX_NEW_TOKENS

if TYPE_CHECKING:
    from app.hardware import HardwareReport
    from app.models.fit_choice import FitChoice
    from app.models.fit_estimate import ContextNeeds, ModelSource


def add_fit_parser(sub: Any) -> None:
    """Register ``palidesk fit`` on the main parser's subcommands."""
    fit = sub.add_parser("fit", help="choose the quantization and GPU layers for this machine")
    fit.add_argument("variant", help="catalog name (e.g. paligemma2-3b-mix-224) or model folder")
    fit.add_argument("--json", action="store_true", help="one JSON object on stdout")
    fit.add_argument("--image-tokens", type=int,
                     help="image tokens (default: the model's, 256 / 1024 / 4096)")
    fit.add_argument("--prompt-tokens", type=int, default=256)
    fit.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS,
                     help=f"room for the answer (default {MAX_NEW_TOKENS}, as the window)")


def resolve_variant(variant: str) -> ModelSource:
    """A model folder when ``variant`` is a folder on disk, else a catalog entry."""
    from app.model_files.model_folder import ModelFolder
    from app.models.catalog import find

    path = Path(variant).expanduser()
    if path.is_dir():
        return ModelFolder(path)
    return find(variant)


def run_fit(args: argparse.Namespace, hardware: HardwareReport | None = None) -> int:
    """Print the choice; exit code 0 even when nothing fits (that is a valid answer)."""
    # Imported here so that building the parser stays cheap for every other command.
    from app.hardware import detect
    from app.models.fit_choice import candidate_quants, choose, fit_badge
    from app.models.fit_estimate import ContextNeeds, layout_for

    source = resolve_variant(args.variant)
    quants = candidate_quants(source)
    if args.image_tokens is not None:
        image_tokens = args.image_tokens
    else:
        image_tokens = layout_for(source, quants[0]).vision.patches
    context = ContextNeeds(image_tokens, args.prompt_tokens, args.max_new_tokens)
    hardware = hardware or detect()
    choice = choose(source, hardware, context, quants)
    badges = {q: fit_badge(source, q, hardware, context) for q in quants}
    speeds = choice.speeds or _speeds(source, quants)
    if args.json:
        # One JSON object on one line, nothing else on stdout (scripts parse it).
        record = _as_dict(source, hardware, context, choice, badges)
        record["cpu_tokens_per_s"] = {q: {"value": round(f.tokens_per_s, 2), "source": f.source}
                                      for q, f in speeds.items()}
        print(json.dumps(record))
    else:
        lines = _lines(source, hardware, context, choice, badges)
        lines[-1:-1] = _speed_lines(badges, speeds)
        print("\n".join(lines))
    return 0


def _speeds(source: ModelSource, quants: list[str]) -> dict[str, Any]:
    from app.models.fit_choice import layout_speeds, measured_speeds
    from app.models.fit_estimate import layout_for

    return layout_speeds([layout_for(source, q) for q in quants], measured_speeds(source))


def _speed_lines(badges: dict[str, str], speeds: dict[str, Any]) -> list[str]:
    """Decode speed on the CPU per quantization, labelled measured or estimated."""
    from app.models.decode_speed import CPU_BANDWIDTH

    lines = ["decode on the CPU (estimated: bandwidth / bytes read per token, "
             f"{CPU_BANDWIDTH / 1e9:.0f} GB/s unless a speed test measured this machine):"]
    for quant, figure in speeds.items():
        lines.append(f"  {quant:<8}{badges.get(quant, ''):<17}{figure.label()}")
    return lines


def _name(source: ModelSource) -> str:
    from app.model_files.model_folder import ModelFolder
    from app.models.catalog import CatalogEntry

    if isinstance(source, CatalogEntry):
        return source.name
    return str(source.path) if isinstance(source, ModelFolder) else str(source)


def _as_dict(source: ModelSource, hardware: HardwareReport, context: ContextNeeds,
             choice: FitChoice, badges: dict[str, str]) -> dict[str, Any]:
    from app.models.catalog import CatalogEntry
    from app.models.fit_choice import describe

    return {
        "variant": _name(source),
        "source": "catalog" if isinstance(source, CatalogEntry) else "folder",
        **describe(choice),
        "context": {"image_tokens": context.image_tokens,
                    "prompt_tokens": context.prompt_tokens,
                    "max_new_tokens": context.max_new_tokens,
                    "n_ubatch": context.n_ubatch, "n_ctx": context.n_ctx},
        "hardware": hardware.summary(),
        "badges": badges,
    }


def _lines(source: ModelSource, hardware: HardwareReport, context: ContextNeeds,
           choice: FitChoice, badges: dict[str, str]) -> list[str]:
    from app.hardware import format_gb

    b = choice.breakdown
    where = {"gpu": "entirely on the GPU", "partial": "split between GPU and CPU",
             "cpu": "on the CPU", "none": "nowhere: too large"}[choice.device]
    rows = [
        ("text weights", b.weights_gpu, b.weights_cpu),
        ("vision", b.vision_gpu, b.vision - b.vision_gpu),
        ("KV cache", b.kv_gpu, b.kv_cache - b.kv_gpu),
        ("compute", b.compute_gpu, b.compute - b.compute_gpu),
        ("margin", b.margin_gpu, b.margin - b.margin_gpu),
        ("total", b.total_gpu, b.total_cpu),
    ]
    lines = [
        f"model:        {_name(source)}",
        f"machine:      {hardware.summary()}",
        f"context:      {context.image_tokens} image + {context.prompt_tokens} prompt + "
        f"{context.max_new_tokens} new tokens (n_ctx {context.n_ctx})",
        f"choice:       {choice.quant} {where}, GPU layers {b.gpu_layers} of {b.layer_count}",
        f"memory:       {'GPU':>10} {'CPU':>10}",
    ]
    lines += [f"  {label:<12}{format_gb(gpu):>10} {format_gb(cpu):>10}" for label, gpu, cpu in rows]
    lines.append(choice.sentence)
    return lines
