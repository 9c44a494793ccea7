"""PaliDesk's unfinished downloads in the Hugging Face cache: found, sized and deleted.

A download into the cache keeps the bytes that arrived in ``blobs/<etag>.palidesk.incomplete``
so the next try continues it (download.py). One that is never tried again (the user chose
another model, the process was killed) would stay there for good: nothing in the cache's
own tools removes it, and ``scan_cache_dir`` does not count it. The ``.palidesk`` in the
name marks the file as PaliDesk's, in a repository PaliDesk downloads: the partial files
of other programs (huggingface_hub names its own ``<etag>.<random>.incomplete``) are never
counted or touched. A file whose lock (the one huggingface_hub takes for the same blob) is
held by a live process is being written right now and is left alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from app.model_files.hf_cache import hub_cache_dir

PARTIAL_SUFFIX = ".palidesk.incomplete"
REPO_PREFIX = "models--"


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """``models--owner--name`` in ``cache_dir``, as huggingface_hub names it."""
    return Path(cache_dir) / (REPO_PREFIX + repo_id.replace("/", "--"))


def cache_partial(cache_dir: Path, repo_id: str, etag: str) -> Path:
    """Where the bytes of blob ``etag`` collect until it is complete."""
    return repo_folder(cache_dir, repo_id) / "blobs" / f"{etag}{PARTIAL_SUFFIX}"


def cache_partial_lock(cache_dir: Path, repo_id: str, etag: str) -> Path:
    """The lock huggingface_hub takes while it writes blob ``etag`` of ``repo_id``."""
    return Path(cache_dir) / ".locks" / repo_folder(cache_dir, repo_id).name / f"{etag}.lock"


@dataclass(frozen=True)
class HubPartial:
    """One unfinished PaliDesk download in the Hugging Face cache."""

    repo_id: str
    path: Path
    size_bytes: int
    in_use: bool  # a live process holds its lock: it is being downloaded right now


def hub_partials(cache_dir: Path | None = None) -> list[HubPartial]:
    """PaliDesk's partial files in the cache, by repository, with their real sizes."""
    cache_dir = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    found = []
    try:
        repos = sorted(p for p in cache_dir.glob(REPO_PREFIX + "*") if p.is_dir())
    except OSError:
        return []
    for repo in repos:
        repo_id = repo.name.removeprefix(REPO_PREFIX).replace("--", "/", 1)
        for partial in sorted((repo / "blobs").glob("*" + PARTIAL_SUFFIX)):
            try:
                size = partial.stat().st_size
            except OSError:  # finished or deleted meanwhile
                continue
            etag = partial.name.removesuffix(PARTIAL_SUFFIX)
            lock = cache_partial_lock(cache_dir, repo_id, etag)
            found.append(HubPartial(repo_id, partial, size, lock_is_held(lock)))
    return found


def lock_is_held(lock_path: Path) -> bool:
    """Whether a live process holds ``lock_path`` (a lock of a killed process is free)."""
    from filelock import FileLock, Timeout

    if not lock_path.exists():
        return False
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return True  # cannot tell: the safe side is to leave the file alone
    lock.release()
    return False


def clean_hub_partials(cache_dir: Path | None = None) -> tuple[int, int]:
    """Delete PaliDesk's partial files nobody is writing; returns (files, bytes freed)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    return delete_partials(hub_partials(cache_dir), cache_dir)


def delete_partials(partials: list[HubPartial] | tuple[HubPartial, ...],
                    cache_dir: Path | None = None) -> tuple[int, int]:
    """Delete those of ``partials`` nobody is writing; returns (files, bytes freed)."""
    from filelock import FileLock, Timeout

    cache_dir = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    count = freed = 0
    for partial in partials:
        if partial.in_use:
            continue
        etag = partial.path.name.removesuffix(PARTIAL_SUFFIX)
        lock_path = cache_partial_lock(cache_dir, partial.repo_id, etag)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path), mode=0o664)
        try:
            lock.acquire(timeout=0)  # held while deleting: no download starts meanwhile
        except (Timeout, OSError):
            continue
        try:
            with contextlib.suppress(FileNotFoundError):
                size = partial.path.stat().st_size
                partial.path.unlink()
                count += 1
                freed += size
        finally:
            lock.release()
    return count, freed
