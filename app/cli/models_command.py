"""``palidesk models list|pull|import|remove``: get and manage installed models.

Kept light to import (the parser is built on every start): huggingface_hub is only
imported when a subcommand runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# A bare name is one of Google's repositories: "paligemma2-3b-pt-224" -> google/...
DEFAULT_OWNER = "google"


def repo_id_for(name_or_repo: str) -> str:
    """``NAME`` -> ``google/NAME``; ``owner/name`` stays as it is."""
    return name_or_repo if "/" in name_or_repo else f"{DEFAULT_OWNER}/{name_or_repo}"


def add_models_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``models`` and its subcommands on the top-level subparsers."""
    models = sub.add_parser("models", help="download and manage models")
    models.set_defaults(models_parser=models)  # to print its help when no subcommand is given
    models_sub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", type=Path,
                        help="where installed models live (default: the one in Settings)")

    listing = models_sub.add_parser("list", parents=[common], help="installed models")
    listing.add_argument("--json", action="store_true")

    pull = models_sub.add_parser(
        "pull", parents=[common],
        help="download, convert, quantize, verify and install a PaliGemma 2 model")
    pull.add_argument("name", metavar="NAME_OR_REPO",
                      help="e.g. paligemma2-3b-pt-224 (= google/...) or owner/name")
    pull.add_argument("--quant", default="Q4_K_M",
                      help="quantization(s) to make, comma-separated (default Q4_K_M)")
    pull.add_argument("--dest", type=Path,
                      help="only download the checkpoint into this folder (no conversion)")
    pull.add_argument("--revision", default="main", help="branch, tag or commit (default main)")
    pull.add_argument("--token", help="Hugging Face access token "
                      "(default: HF_TOKEN, or the one saved by `hf auth login`)")
    pull.add_argument("--name", dest="install_name", metavar="NAME",
                      help="name to install it under (default: the repository's name)")
    cache = pull.add_mutually_exclusive_group()
    cache.add_argument("--hf-cache", dest="hf_cache", action="store_true", default=None,
                       help="download into the Hugging Face cache, shared with transformers "
                       "(the default unless Settings say otherwise)")
    cache.add_argument("--no-hf-cache", dest="hf_cache", action="store_false",
                       help="download into PaliDesk's models folder, deleted once prepared")
    pull.add_argument("--no-mask-decoder", action="store_true",
                      help="do not also download the mask decoder for the segment task")

    imp = models_sub.add_parser(
        "import", parents=[common],
        help="install a local Hugging Face checkpoint folder (e.g. a fine-tune) or a "
             "PaliDesk model folder")
    imp.add_argument("path", type=Path)
    imp.add_argument("--name", help="name to install it under (default: the folder's name)")
    imp.add_argument("--quant", default="Q4_K_M", help="quantization(s), comma-separated")

    remove = models_sub.add_parser(
        "remove", parents=[common],
        help="delete an installed model, or the unfinished download of one")
    remove.add_argument("name")

    models_sub.add_parser("clean", parents=[common],
                          help="delete every unfinished download or preparation")


def run_models_command(args: argparse.Namespace) -> int:
    """Run the ``models`` subcommand chosen in ``args``; returns the exit code."""
    if args.models_command == "pull":
        return _download_only(args) if args.dest else _prepare(args, repo_id_for(args.name))
    if args.models_command == "import":
        return _prepare(args, None)
    if args.models_command == "list":
        return _list(args)
    if args.models_command == "remove":
        return _remove(args)
    if args.models_command == "clean":
        return _clean(args)
    args.models_parser.print_help(sys.stderr)
    return 2


def _settings():
    from app.settings import SettingsStore, default_settings_path

    return SettingsStore(default_settings_path()).load().settings


def models_dir_from(args: argparse.Namespace) -> Path:
    """``--models-dir`` (where the command has one), else the models folder in Settings."""
    from app.session.model_resolver import models_dir_from_settings

    return models_dir_from_settings(getattr(args, "models_dir", None))


def _installed(args: argparse.Namespace):
    from app.models.installed import InstalledModels

    return InstalledModels(models_dir_from(args))


def _list(args: argparse.Namespace) -> int:
    import json

    from app.model_files.hf_cache import cached_checkpoints, hub_cache_dir
    from app.models.disk_space import format_size
    from app.models.unfinished import unfinished_work

    models = _installed(args)
    installed = models.list()
    leftovers = unfinished_work(models)  # with their partial files in the HF cache
    cached = cached_checkpoints()
    if args.json:
        print(json.dumps({
            "models_dir": str(models.models_dir),
            "disk_use_bytes": models.disk_use(),
            "models": [{"name": m.name, "folder": str(m.folder), "types": m.text_types,
                        "source": m.manifest.source.get("name"),
                        "image_size": m.manifest.image_size, "size_bytes": m.size_bytes}
                       for m in installed],
            "unfinished": [{"name": u.name, "folder": str(u.folder) if u.folder else None,
                            "size_bytes": u.size_bytes,
                            "hf_cache_files": [str(p.path) for p in u.hub_files]}
                           for u in leftovers],
            "hf_cache": {"folder": str(hub_cache_dir()),
                         "checkpoints": [{"repo_id": c.repo_id, "commit": c.commit,
                                          "folder": str(c.folder),
                                          "size_bytes": c.size_bytes} for c in cached]},
        }))
        return 0
    print(f"models folder: {models.models_dir} ({format_size(models.disk_use())} used)")
    if not installed:
        print("no models installed: `palidesk models pull paligemma2-3b-mix-224`")
    for m in installed:
        print(f"  {m.name:<34} {m.manifest.image_size:>4} px  {format_size(m.size_bytes):>9}  "
              f"{', '.join(m.text_types)}")
    if leftovers:
        print("unfinished (pull the same name again to continue, or "
              "`palidesk models remove NAME` / `palidesk models clean` to delete):")
    for u in leftovers:
        where = u.folder or f"partial files in {hub_cache_dir()}"
        print(f"  {u.name:<34} {format_size(u.size_bytes):>17}  {where}")
    if cached:
        print(f"in the Hugging Face cache ({hub_cache_dir()}), ready to prepare without "
              "downloading:")
    for c in cached:
        print(f"  {c.repo_id:<34} {format_size(c.size_bytes):>17}  commit {c.commit[:12]}")
    for problem in models.problems():
        print(f"  problem: {problem}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from app.errors import ModelFolderError
    from app.model_files.manifest import MANIFEST_NAME
    from app.models.disk_space import format_size
    from app.models.installed import WORK_SUFFIX
    from app.models.unfinished import remove_named

    models = _installed(args)
    folder = models.folder_for(args.name.removesuffix(WORK_SUFFIX))
    # A folder of the models folder that is no model (mask-decoder/, the user's own) is
    # never deleted; a model with a damaged manifest still is.
    if folder.is_dir() and not (folder / MANIFEST_NAME).is_file():
        raise ModelFolderError(
            f"{args.name!r} is not an installed model ({folder} has no manifest.json): "
            "`palidesk models remove` deletes only models and unfinished downloads.")
    freed = remove_named(models, args.name)  # with its partial files in the cache
    print(f"removed {args.name} ({format_size(freed)} freed)", file=sys.stderr)
    return 0


def _clean(args: argparse.Namespace) -> int:
    from app.models.disk_space import format_size
    from app.models.unfinished import clean_unfinished

    count, files, freed = clean_unfinished(_installed(args))
    cache = f" and {files} partial file(s) in the Hugging Face cache" if files else ""
    print(f"deleted {count} unfinished download(s){cache} ({format_size(freed)} freed)",
          file=sys.stderr)
    return 0


def _prepare(args: argparse.Namespace, repo_id: str | None) -> int:
    from app.cli.install_checks import (
        check_import_source,
        check_install_name,
        check_quant_types,
    )
    from app.cli.progress_printer import transfer_printer
    from app.models.prepare import PrepareRequest, prepare_model

    quants = tuple(q.strip().upper() for q in args.quant.split(",") if q.strip())
    check_quant_types(quants)  # before any download or copy: no NAME.partial left
    if repo_id is None:
        check_import_source(Path(args.path))
    if repo_id is not None:
        use_cache = args.hf_cache if args.hf_cache is not None else _settings(
        ).download_to_hf_cache
        request = PrepareRequest(args.install_name or repo_id.split("/")[-1], quants,
                                 repo_id=repo_id, token=args.token, revision=args.revision,
                                 use_hf_cache=use_cache)
    else:
        from app.model_files.hf_cache import repo_id_of_snapshot

        cached_repo = repo_id_of_snapshot(Path(args.path))  # a Hugging Face cache snapshot
        name = args.name or (cached_repo.split("/")[-1] if cached_repo
                             else Path(args.path).resolve().name)
        request = PrepareRequest(name, quants, local_path=Path(args.path))
    check_install_name(request.name)
    models = _installed(args)
    with transfer_printer() as printer:  # a pull or an import: mostly a download
        folder = prepare_model(request, models, progress=printer)
    print(f"installed {request.name} in {folder}", file=sys.stderr)
    if repo_id is not None and not args.no_mask_decoder:
        _offer_mask_decoder(models.models_dir)
    return 0


def _offer_mask_decoder(models_dir: Path) -> None:
    """Get the segment task's mask decoder with the first model; a failure only warns."""
    from app.cli.mask_decoder_pull import pull_decoder
    from app.errors import PaliDeskError
    from app.models.mask_decoder import installed_decoder

    if installed_decoder(models_dir) is not None:
        return
    try:
        pull_decoder(models_dir)
    except PaliDeskError as exc:
        print(f"warning: the model is installed, but the mask decoder is not: {exc} "
              "Segment shows boxes only until you run `palidesk masks pull`.",
              file=sys.stderr)


def _download_only(args: argparse.Namespace) -> int:
    from app.cli.progress_printer import transfer_printer
    from app.models.disk_space import format_size
    from app.models.download import download_checkpoint, plan_download

    plan = plan_download(repo_id_for(args.name), revision=args.revision, token=args.token)
    from app.counted import counted

    print(f"{plan.repo_id} at {plan.commit[:12]}: {counted(len(plan.files), 'file')}, "
          f"{format_size(plan.total_bytes)}", file=sys.stderr)
    with transfer_printer() as printer:
        folder = download_checkpoint(plan, args.dest, token=args.token, progress=printer)
    print(f"downloaded {plan.repo_id} to {folder}", file=sys.stderr)
    return 0
