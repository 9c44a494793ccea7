"""Download a checkpoint's safe files from Hugging Face: resumable, cancellable, verified.

The bytes are fetched by our own loop over huggingface_hub's shared HTTP session (its
headers, token and error refinement included) rather than by ``hf_hub_download``: only
that gives byte progress in PaliDesk's ProgressEvent shape, a cancel between chunks, a
partial file under a name we control (resumed with an HTTP Range request by the next
call) and a checksum computed while the bytes arrive. Each file gets its final name only
after its size and checksum match what the hub lists, so a file with its final name is
complete.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

import httpx2
from huggingface_hub import hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from app.errors import (
    Cancelled,
    CorruptDownloadError,
    DiskSpaceError,
    DownloadError,
    NetworkError,
    PaliDeskError,
)
from app.models.checksums import ContentDigest, file_matches
from app.models.disk_space import check_disk_space, format_size, required_disk_bytes
from app.models.download_progress import ByteProgress
from app.models.hub_errors import hub_errors
from app.models.hub_files import DownloadPlan, RemoteFile, hub_endpoint, hub_host, plan_download
from app.progress import CancelFlag, ProgressCallback, no_progress

__all__ = [
    "PARTIAL_SUFFIX",
    "DownloadPlan",
    "RemoteFile",
    "download_checkpoint",
    "plan_download",
]

PARTIAL_SUFFIX = ".incomplete"
# Connecting should be quick; a read may stall a while on a slow link before we give up.
TIMEOUT = httpx2.Timeout(60.0, connect=15.0)


def download_checkpoint(
    plan_or_repo_id: DownloadPlan | str,
    dest_dir: Path,
    *,
    revision: str = "main",
    token: str | None = None,
    endpoint: str | None = None,
    quant_types: Sequence[str] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelFlag | None = None,
) -> Path:
    """Download the config, tokenizer and safetensors files into ``dest_dir``; returns it.

    A file already complete is kept, a partial one (``*.incomplete``) resumes. Before any
    byte is fetched, the free space is checked: for the download alone, or, when
    ``quant_types`` is given (even empty), also for the F16 conversion and those quantized
    files. Progress: stage "download", done/total in bytes. Raises Cancelled (partial data
    kept), DiskSpaceError or a DownloadError subclass.
    """
    plan = (plan_or_repo_id if isinstance(plan_or_repo_id, DownloadPlan)
            else plan_download(plan_or_repo_id, revision=revision, token=token,
                               endpoint=endpoint))
    base = hub_endpoint(endpoint or plan.endpoint)
    dest_dir = Path(dest_dir)
    needed = required_disk_bytes(plan, quant_types or (), convert=quant_types is not None)
    what = "the download" if quant_types is None else "downloading and converting the model"
    check_disk_space(dest_dir, needed - bytes_on_disk(plan, dest_dir), what)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, dest_dir) from exc
    meter = ByteProgress(progress, plan.total_bytes)
    for remote in plan.files:
        _check_cancel(cancel, plan)
        _download_file(plan, remote, dest_dir, base=base, token=token, meter=meter,
                       cancel=cancel)
    return dest_dir


def partial_path(final: Path) -> Path:
    """Where ``final``'s bytes gather until it is complete and verified."""
    return final.with_name(final.name + PARTIAL_SUFFIX)


def bytes_on_disk(plan: DownloadPlan, dest_dir: Path) -> int:
    """Bytes of ``plan`` already in ``dest_dir`` (complete or partial files), by size only."""
    total = 0
    for remote in plan.files:
        for path in (dest_dir / remote.path, partial_path(dest_dir / remote.path)):
            try:
                total += min(path.stat().st_size, remote.size)
                break
            except OSError:
                continue
    return total


def write_error(exc: OSError, path: Path) -> PaliDeskError:
    """An OSError while writing ``path``, in words (a full disk is the common case)."""
    if exc.errno == errno.ENOSPC:
        return DiskSpaceError(
            f"The disk is full while downloading {path.name}. Free some space and run the "
            "download again; it continues where it stopped."
        )
    return DownloadError(f"Cannot write {path}: {exc.strerror or exc}.")


def _check_cancel(cancel: CancelFlag | None, plan: DownloadPlan) -> None:
    if cancel is not None and cancel.cancelled:
        raise Cancelled(
            f"The download of {plan.repo_id} was cancelled. What arrived is kept; the next "
            "download continues from there."
        )


def _download_file(
    plan: DownloadPlan,
    remote: RemoteFile,
    dest_dir: Path,
    *,
    base: str,
    token: str | None,
    meter: ByteProgress,
    cancel: CancelFlag | None,
) -> None:
    """Fetch one file (or the rest of it) and give it its final name once verified."""
    final = dest_dir / remote.path
    partial = partial_path(final)
    if final.exists():
        if file_matches(final, remote):
            partial.unlink(missing_ok=True)
            meter.skipped(remote.size, remote.path, "already downloaded")
            return
        final.unlink()  # from another revision, or damaged: fetch it again
    have = partial.stat().st_size if partial.exists() else 0
    if have > remote.size:
        partial.unlink()
        have = 0
    digest = ContentDigest(remote)
    if have:
        digest.update_from_file(partial)
        meter.skipped(have, remote.path, f"resuming after {format_size(have)}")
    if have < remote.size:
        try:
            digest = _stream(plan, remote, partial, have, digest, base=base, token=token,
                             meter=meter, cancel=cancel)
        except OSError as exc:  # writing the partial file (hub errors arrive translated)
            raise write_error(exc, partial) from exc
    size = partial.stat().st_size if partial.exists() else 0
    if size < remote.size:
        raise NetworkError(
            f"The connection to {hub_host(base)} ended before {remote.path} was complete. "
            "Check your internet connection and try again; the download continues where "
            "it stopped."
        )
    if size > remote.size or not digest.matches():
        partial.unlink(missing_ok=True)
        raise CorruptDownloadError(
            f"The download of {remote.path} from {plan.repo_id} is corrupted: it does not "
            "match the checksum Hugging Face lists for it. The bad file was deleted; please "
            "try again."
        )
    try:
        os.replace(partial, final)
    except OSError as exc:
        raise write_error(exc, final) from exc
    meter.received(0, remote.path, final=True)


def _stream(
    plan: DownloadPlan,
    remote: RemoteFile,
    partial: Path,
    have: int,
    digest: ContentDigest,
    *,
    base: str,
    token: str | None,
    meter: ByteProgress,
    cancel: CancelFlag | None,
) -> ContentDigest:
    """GET ``remote`` from byte ``have`` on, appending to ``partial``; returns the digest."""
    url = hf_hub_url(plan.repo_id, remote.path, revision=plan.commit, endpoint=base)
    headers = build_hf_headers(token=token)
    # Sizes and offsets must be those of the file itself, never of a gzip encoding of it.
    headers["Accept-Encoding"] = "identity"
    if have:
        headers["Range"] = f"bytes={have}-"
    with (
        hub_errors(plan.repo_id, token=token, endpoint=base, revision=plan.revision,
                   path=remote.path, gated=plan.gated),
        get_session().stream("GET", url, headers=headers, timeout=TIMEOUT) as response,
    ):
        if response.status_code >= 400:
            if response.status_code == 416:  # our partial does not fit the file: start over
                partial.unlink(missing_ok=True)
            response.read()  # the error's details are in the body
            hf_raise_for_status(response)
        if have and response.status_code != 206:
            # The server ignored the Range header and sends the whole file: start again.
            meter.discarded(have)
            have = 0
            digest = ContentDigest(remote)
        with partial.open("ab" if have else "wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
                digest.update(chunk)
                meter.received(len(chunk), remote.path)
                _check_cancel(cancel, plan)
    return digest

