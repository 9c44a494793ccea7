"""Checkpoints in the Hugging Face cache, where transformers and ``hf download`` keep them.

PaliDesk reads checkpoints from there instead of downloading them again, and by default
downloads new ones there too, so every tool on the computer shares one copy. The cache
layout (``models--owner--name/{blobs,snapshots,refs}``) is huggingface_hub's: we only use
its public functions (``scan_cache_dir``, ``try_to_load_from_cache``) to look inside.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

# The converter needs the config, the tokenizer and every shard of the weights.
CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
SINGLE_WEIGHTS = "model.safetensors"
TOKENIZERS = ("tokenizer.model", "tokenizer.json")
WEIGHTS_SUFFIX = ".safetensors"
# huggingface_hub is imported inside the functions that use it: the converter imports
# this module for ``repo_id_of_snapshot`` alone and should stay quick to start.


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder, read from the environment now (not at import, as
    huggingface_hub does) so a changed HF_HOME or HF_HUB_CACHE is honoured."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def repo_id_of_snapshot(folder: Path) -> str | None:
    """``owner/name`` when ``folder`` is a snapshot in a Hugging Face cache
    (``…/models--owner--name/snapshots/<commit>``), else None."""
    parts = Path(folder).resolve().parts if Path(folder).exists() else Path(folder).parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        owner_name = parts[-3].removeprefix("models--").split("--", 1)
        if len(owner_name) == 2 and all(owner_name):
            return "/".join(owner_name)
    return None


def remember_ref(repo_id: str, revision: str, commit: str, cache_dir: Path) -> None:
    """Record that ``revision`` (a branch or tag) is at ``commit``, as the cache's
    ``refs/`` folder does: then tools asking for "main" without the network find the
    snapshot. PaliDesk downloads by commit id, which leaves the refs to us."""
    if revision == commit:
        return
    ref = Path(cache_dir) / ("models--" + repo_id.replace("/", "--")) / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)  # a few bytes, as huggingface_hub writes them
    except OSError:
        pass  # only a shortcut for later lookups: the download itself is complete


def _cached(repo_id: str, filename: str, revision: str, cache_dir: Path) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir,
                                       revision=revision)
    except Exception:  # an invalid repo id or revision: then it is not cached either
        return None
    return Path(found) if isinstance(found, str) else None


def find_cached_checkpoint(
    repo_id: str, revision: str = "main", cache_dir: Path | None = None
) -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` when the cache holds everything
    the converter needs (config, tokenizer, every weight shard), else None. No network."""
    cache_dir = cache_dir or hub_cache_dir()
    config = _cached(repo_id, CONFIG, revision, cache_dir)
    if config is None:
        return None
    snapshot = config.parent
    index = _cached(repo_id, INDEX, revision, cache_dir)
    if index is not None:
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
    else:
        shards = {SINGLE_WEIGHTS}
    needed = [*shards]
    if not all(_cached(repo_id, name, revision, cache_dir) for name in needed):
        return None
    if not any(_cached(repo_id, name, revision, cache_dir) for name in TOKENIZERS):
        return None
    return snapshot


@dataclass(frozen=True)
class CachedCheckpoint:
    """A PaliGemma checkpoint found in the Hugging Face cache."""

    repo_id: str
    commit: str
    folder: Path
    size_bytes: int


def cached_checkpoints(cache_dir: Path | None = None) -> list[CachedCheckpoint]:
    """Every complete PaliGemma checkpoint in the cache, newest commit per repository."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    cache_dir = cache_dir or hub_cache_dir()
    try:
        info = scan_cache_dir(cache_dir)
    except (CacheNotFound, OSError, ValueError):
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            names = {f.file_name for f in revision.files}
            if CONFIG not in names or not any(n.endswith(WEIGHTS_SUFFIX) for n in names):
                continue
            if not _is_paligemma(revision.snapshot_path / CONFIG):
                break
            snapshot = find_cached_checkpoint(repo.repo_id, revision.commit_hash, cache_dir)
            if snapshot is not None:
                found.append(CachedCheckpoint(repo.repo_id, revision.commit_hash, snapshot,
                                              revision.size_on_disk))
                break
    return found


def _is_paligemma(config: Path) -> bool:
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "paligemma"
