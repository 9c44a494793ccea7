"""``palidesk masks status|pull|import``: the mask decoder that turns segment codes into masks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_masks_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``masks`` and its subcommands on the top-level subparsers."""
    masks = sub.add_parser("masks", help="the mask decoder used by the segment task")
    masks.set_defaults(masks_parser=masks)
    masks_sub = masks.add_subparsers(dest="masks_command", metavar="SUBCOMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", type=Path,
                        help="where installed models live (default: the one in Settings)")
    status = masks_sub.add_parser("status", parents=[common],
                                  help="is the mask decoder installed and intact?")
    status.add_argument("--json", action="store_true")
    masks_sub.add_parser("pull", parents=[common],
                         help="download big_vision's mask decoder (vae-oid.npz) once")
    imp = masks_sub.add_parser("import", parents=[common],
                               help="install a copy of vae-oid.npz you already have")
    imp.add_argument("file", type=Path, metavar="FILE")


def run_masks_command(args: argparse.Namespace) -> int:
    """Run the ``masks`` subcommand chosen in ``args``; returns the exit code."""
    from app.cli.mask_decoder_pull import pull_decoder
    from app.cli.models_command import models_dir_from

    models_dir = models_dir_from(args)
    if args.masks_command == "status":
        return _status(models_dir, args.json)
    if args.masks_command == "pull":
        path = pull_decoder(models_dir)
        print(f"mask decoder installed: {path}", file=sys.stderr)
        return 0
    if args.masks_command == "import":
        from app.models.mask_decoder import import_decoder

        path = import_decoder(models_dir, args.file)
        print(f"mask decoder installed: {path}", file=sys.stderr)
        return 0
    args.masks_parser.print_help(sys.stderr)
    return 2


def _status(models_dir: Path, as_json: bool) -> int:
    from app.models.mask_decoder import decoder_problem, masks_weights_path, read_record

    weights = masks_weights_path(models_dir)
    problem = decoder_problem(models_dir)
    record = read_record(weights)
    if as_json:
        print(json.dumps({
            "path": str(weights), "installed": problem is None, "problem": problem,
            "sha256": record.sha256 if record else None,
            "source": record.source if record else None,
        }))
    elif problem is None and record is not None:
        print(f"mask decoder: {weights}\n  sha256 {record.sha256}\n  from {record.source}")
    else:
        print(f"{problem} Get it with `palidesk masks pull`, or `palidesk masks import "
              "FILE` for a copy you have.")
    return 0 if problem is None else 1
