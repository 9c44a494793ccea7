"""``palidesk``: convert, quantize, inspect and run PaliGemma 2 models from a terminal."""

from __future__ import annotations

import argparse
import errno
import logging
import multiprocessing
import os
import sys
from pathlib import Path

from app import __version__
from app.cli import option_types
from app.cli.batch_command import add_batch_parser
from app.cli.eval_command import add_eval_parser
from app.cli.fit_command import add_fit_parser
from app.cli.interrupt import EXIT_INTERRUPTED, cancel_on_interrupt
from app.cli.launch_checks import looks_like_command, no_display_problem, unknown_command
from app.cli.masks_command import add_masks_parser
from app.cli.models_command import add_models_parser
from app.cli.progress_printer import ProgressPrinter
from app.cli.score_command import add_score_parser
from app.cli.serve_command import add_serve_parser
from app.cli.task_options import add_task_options
from app.errors import Cancelled, PaliDeskError
from app.user_folders import explain

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a Unix tool stopped by a closed pipe
QUANT_TYPES = ("Q2_K", "Q3_K_M", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="palidesk",
        description="Run Google's PaliGemma 2 locally on llama.cpp.",
    )
    parser.add_argument("--version", action="version", version=f"palidesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show llama.cpp's log")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation end to end on a built-in model, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    convert = sub.add_parser("convert", help="convert a Hugging Face checkpoint to GGUF")
    convert.add_argument("hf_dir", type=Path, help="checkpoint folder (config.json, safetensors)")
    convert.add_argument("--out", type=Path, required=True, help="model folder to write")
    convert.add_argument("--outtype", choices=("f32", "f16", "bf16"), default="f16")

    quantize = sub.add_parser("quantize", help="add a quantized text model to a model folder")
    quantize.add_argument("model_dir", type=Path)
    quantize.add_argument("--type", required=True, type=str.upper, choices=QUANT_TYPES)
    quantize.add_argument("--threads", type=option_types.threads)

    gui = sub.add_parser("gui", help="open the PaliDesk window (the default)")
    gui.add_argument("images", nargs="*", type=Path, metavar="IMAGE")

    info = sub.add_parser("info", help="show what a model folder holds")
    info.add_argument("model_dir", type=Path)
    info.add_argument("--verify", action="store_true",
                      help="check every file's SHA-256 against the manifest (slow for big files)")

    hardware = sub.add_parser("hardware", help="show the GPUs, RAM and CPU PaliDesk can use")
    hardware.add_argument("--json", action="store_true", help="one JSON object on stdout")

    add_models_parser(sub)
    add_fit_parser(sub)
    add_score_parser(sub)
    add_eval_parser(sub)
    add_masks_parser(sub)
    add_batch_parser(sub)
    add_serve_parser(sub)

    run = sub.add_parser(
        "run", help="run a task on images",
        description="Run one task (caption, ocr, ask, detect, segment...) on each image and "
                    "stream the answer to the terminal, or one JSON line per image with "
                    "--json (the input of `palidesk score`).")
    run.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    run.add_argument("--model", type=Path, required=True,
                     help="model folder, or the name of an installed model")
    run.add_argument("--quant", help="text model type (case-insensitive); default: best present")
    add_task_options(run)
    run.add_argument("--json", action="store_true",
                     help="one JSON object per image on stdout, nothing else")
    run.add_argument("--mask-decoder", type=Path, metavar="FILE",
                     help="vae-oid.npz for segment masks (default: the installed one, see "
                          "`palidesk masks status`)")
    return parser


def with_default_verb(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``palidesk photo.jpg`` means ``palidesk gui photo.jpg``: the window with the image.

    A word that names no command and no file (``palidesk scroe``) is a mistyped command,
    not an image: argparse's error says so, with the closest command.
    """
    commands: set[str] = set()
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        commands |= set(getattr(action, "choices", {}) or {})
    first = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if first is None or argv[first] in commands:
        return argv
    if looks_like_command(argv[first]):
        parser.error(unknown_command(argv[first], commands))
    return [*argv[:first], "gui", *argv[first:]]


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    try:
        # Output still buffered (a pipe, a file) is written here, so that a full disk or
        # a closed pipe is reported in words rather than by Python at exit.
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        print(f"error: {os_error_sentence(exc)}", file=sys.stderr)
        _silence_stdout()  # what stdout still buffers could not be written either
        return 1
    return code


def _main(argv: list[str] | None) -> int:
    # A frozen app must let multiprocessing's child (the cancellable quantizer) start here.
    multiprocessing.freeze_support()
    parser = _parser()
    args = parser.parse_args(with_default_verb(sys.argv[1:] if argv is None else argv, parser))
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.self_test:
            from app.selftest import run_self_test
            from app.ui.selftest_window import check_window  # only app/ui imports Qt

            return run_self_test(check_window)
        if args.command in (None, "gui"):
            problem = no_display_problem()
            if problem is not None:  # Qt would abort (exit 134) with a long message
                print(f"error: {problem}", file=sys.stderr)
                return 1
            from app.ui.app import run_gui

            return run_gui(images=getattr(args, "images", None))
        if args.command == "convert":
            return _convert(args)
        if args.command == "quantize":
            return _quantize(args)
        if args.command == "info":
            from app.cli.info_command import print_info

            return print_info(args.model_dir, verify=args.verify)
        if args.command == "hardware":
            from app.cli.hardware_command import print_hardware

            return print_hardware(as_json=args.json)
        if args.command == "fit":
            from app.cli.fit_command import run_fit

            return run_fit(args)
        if args.command == "eval":
            from app.cli.eval_command import run_eval_command

            return run_eval_command(args)
        if args.command == "score":
            from app.cli.score_command import run_score

            return run_score(args)
        if args.command == "masks":
            from app.cli.masks_command import run_masks_command

            return run_masks_command(args)
        if args.command == "models":
            from app.cli.models_command import run_models_command

            return run_models_command(args)
        if args.command == "serve":
            from app.cli.serve_command import run_serve_command

            return run_serve_command(args)
        if args.command == "batch":
            from app.cli.batch_command import run_batch_command

            return run_batch_command(args)
        from app.cli.run_command import run_command

        return run_command(args)
    except (KeyboardInterrupt, Cancelled) as exc:
        # A batch's message says what is kept and how to continue; others just stop.
        said = str(exc) if isinstance(exc, Cancelled) and "--resume" in str(exc) else ""
        print(f"\n{said or 'cancelled'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PaliDeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`palidesk run --json ... | head`): nothing more to say,
        # and Python must not complain again when it flushes stdout at exit.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        # A user folder that cannot be created or read (e.g. XDG_DATA_HOME is a file).
        print(f"error: {os_error_sentence(exc)}", file=sys.stderr)
        if exc.filename is None:
            _silence_stdout()  # what stdout still buffers could not be written either
        return 1


def os_error_sentence(exc: OSError) -> str:
    """``explain``, but a full disk says so even when no file name came with the error
    (a write to stdout redirected to a full disk)."""
    if exc.filename is None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full: free some space and run the command again."
    return explain(exc)


def _convert(args: argparse.Namespace) -> int:
    from app.convert.converter import convert_checkpoint

    with ProgressPrinter() as printer, cancel_on_interrupt() as cancel:
        manifest = convert_checkpoint(args.hf_dir, args.out, args.outtype, progress=printer,
                                      cancel=cancel)
    for entry in manifest.files:
        print(f"wrote {args.out / entry.name} ({entry.size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from app.models.quantize import quantize_folder

    # With a cancel flag the quantizer runs in a child process that Ctrl+C can stop.
    with ProgressPrinter() as printer, cancel_on_interrupt() as cancel:
        target = quantize_folder(args.model_dir, args.type, threads=args.threads,
                                 progress=printer, cancel=cancel)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
