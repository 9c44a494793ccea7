"""Unfinished work, as ``models list``, ``models clean`` and the Models window show it.

A model downloaded into the Hugging Face cache leaves two kinds of leftovers when it is
interrupted for good: its ``NAME.partial`` folder under the models folder (empty until the
conversion starts) and the partial files in the cache (hub_leftovers.py). Shown apart, the
first reads "0 bytes" while the bytes sit in the second; here they are one entry with the
real size. Partial files of a repository no leftover folder names are entries of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelFolderError
from app.models.hub_leftovers import (
    HubPartial,
    clean_hub_partials,
    delete_partials,
    hub_partials,
)
from app.models.installed import WORK_SUFFIX, InstalledModels


@dataclass(frozen=True)
class Unfinished:
    """One unfinished download or preparation: a name, its folder and cache files."""

    name: str  # the model's name, or the repository for cache files alone
    size_bytes: int
    folder: Path | None  # the ``NAME.partial`` folder, when there is one
    hub_files: tuple[HubPartial, ...] = ()


def unfinished_work(models: InstalledModels, cache_dir: Path | None = None) -> list[Unfinished]:
    """Every unfinished download or preparation with the disk space it really holds.
    Cache files being written right now (their lock is held) are not listed."""
    partials = [p for p in hub_partials(cache_dir) if not p.in_use]
    found = []
    for leftover in models.leftovers():
        mine = tuple(p for p in partials if p.repo_id.split("/")[-1] == leftover.name)
        partials = [p for p in partials if p not in mine]
        found.append(Unfinished(leftover.name, leftover.size_bytes
                                + sum(p.size_bytes for p in mine), leftover.folder, mine))
    for repo_id in sorted({p.repo_id for p in partials}):
        mine = tuple(p for p in partials if p.repo_id == repo_id)
        found.append(Unfinished(repo_id, sum(p.size_bytes for p in mine), None, mine))
    return found


def clean_unfinished(models: InstalledModels,
                     cache_dir: Path | None = None) -> tuple[int, int, int]:
    """Delete every unfinished preparation and PaliDesk's partial files in the cache
    nobody is writing; returns (folders deleted, cache files deleted, bytes freed)."""
    folders = len(models.leftovers())
    freed = models.clean_up()
    files, cache_freed = clean_hub_partials(cache_dir)
    return folders, files, freed + cache_freed


def remove_named(models: InstalledModels, name: str, cache_dir: Path | None = None) -> int:
    """``models remove NAME``: the installed model or unfinished work called ``name`` (as
    ``models list`` shows it: a model's name, or a repository for cache files alone),
    with its partial files in the cache; returns the bytes freed."""
    name = name.removesuffix(WORK_SUFFIX)
    entry = next((u for u in unfinished_work(models, cache_dir) if u.name == name), None)
    if entry is not None and entry.folder is None:  # partial files in the cache alone
        return delete_partials(entry.hub_files, cache_dir)[1]
    try:
        freed = models.remove(name)
    except ModelFolderError:
        if entry is None:
            raise
        freed = 0
    if entry is not None:
        freed += delete_partials(entry.hub_files, cache_dir)[1]
    return freed
