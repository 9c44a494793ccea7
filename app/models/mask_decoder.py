"""The mask decoder's weights (big_vision's vae-oid.npz) in the models folder.

One file, published by the big_vision project, turns a segment object's 16 codes into a
mask. PaliDesk downloads it once (resumable, with progress) into
``<models folder>/mask-decoder/vae-oid.npz``, or copies a file the user already has.
big_vision publishes no checksum for it, so the SHA-256 of the first complete, valid copy
is recorded beside it (``vae-oid.npz.json``) and every later use checks the file against
that record: a damaged or swapped file is noticed instead of drawing wrong masks.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx2

from app import file_errors
from app.atomic_files import move_into_place, write_text_atomic
from app.errors import (
    Cancelled,
    CorruptDownloadError,
    DiskSpaceError,
    DownloadError,
    MaskDecoderError,
    NetworkError,
    PaliDeskError,
)
from app.file_digest import file_sha256
from app.models.disk_space import check_disk_space
from app.models.download import write_error
from app.models.download_progress import ByteProgress
from app.models.hub_errors import network_error
from app.progress import CancelFlag, ProgressCallback, no_progress
from app.tasks.masks import read_decoder_weights

DECODER_URL = "https://storage.googleapis.com/big_vision/paligemma/vae-oid.npz"
# Tests and mirrors point the download elsewhere with this variable.
URL_VARIABLE = "PALIDESK_MASK_DECODER_URL"
FOLDER_NAME = "mask-decoder"
FILE_NAME = "vae-oid.npz"
RECORD_SUFFIX = ".json"
# What the window says when Segment ran without the decoder (with a button to get it).
# The decoder is one small file from big_vision's bucket, not a Hugging Face repository,
# so it keeps its own resumable download: bytes gather in NAME.incomplete.
_PARTIAL_SUFFIX = ".incomplete"
# Connecting should be quick; a read may stall a while on a slow link before we give up.
TIMEOUT = httpx2.Timeout(60.0, connect=15.0)


def partial_path(final: Path) -> Path:
    """Where ``final``'s bytes gather until it is complete and verified."""
    return final.with_name(final.name + _PARTIAL_SUFFIX)


MISSING_NOTICE = ("Segment shows boxes only: the mask decoder (big_vision's vae-oid.npz, "
                  "a few megabytes) is not installed.")


def decoder_url() -> str:
    """Where the decoder is downloaded from: ``$PALIDESK_MASK_DECODER_URL`` or big_vision."""
    return os.environ.get(URL_VARIABLE) or DECODER_URL


def masks_weights_path(models_dir: Path) -> Path:
    """Where the decoder lives (or will live) under the models folder."""
    return Path(models_dir) / FOLDER_NAME / FILE_NAME


def _record_path(weights: Path) -> Path:
    return weights.with_name(weights.name + RECORD_SUFFIX)


@dataclass(frozen=True)
class DecoderRecord:
    """What was recorded when the decoder was installed."""

    sha256: str
    size: int
    source: str  # the URL or the imported file's path


def read_record(weights: Path) -> DecoderRecord | None:
    """The record beside ``weights``, or None when there is none or it is unreadable."""
    try:
        data = json.loads(_record_path(weights).read_text(encoding="utf-8"))
        return DecoderRecord(str(data["sha256"]), int(data["size"]), str(data["source"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


_verified: dict[tuple[str, int, int], bool] = {}


def decoder_problem(models_dir: Path) -> str | None:
    """Why the installed decoder cannot be used, in words; None when it is fine.

    "Not installed" counts as a problem too. The checksum is computed once per unchanged
    file (by path, size and modification time).
    """
    weights = masks_weights_path(models_dir)
    if not weights.is_file():
        return "The mask decoder is not installed."
    record = read_record(weights)
    if record is None:
        return (f"{weights} has no checksum record; download or import the mask decoder "
                "again.")
    stat = weights.stat()
    key = (str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = stat.st_size == record.size and file_sha256(weights) == record.sha256
    if not _verified[key]:
        return (f"{weights} has changed since it was installed (its SHA-256 no longer "
                "matches); download or import the mask decoder again.")
    return None


def installed_decoder(models_dir: Path) -> Path | None:
    """The decoder's path when it is installed and matches its record, else None.

    This is what the engine worker passes to ``run_task(mask_decoder=...)``.
    """
    return masks_weights_path(models_dir) if decoder_problem(models_dir) is None else None


def check_decoder_file(path: Path) -> None:
    """Raise MaskDecoderError unless ``path`` is a usable decoder: an .npz archive (not an
    .npy renamed), every tensor present, of the right shapes, none of them empty."""
    if not zipfile.is_zipfile(path):
        # np.load would return a bare array for an .npy and fail with a TypeError.
        raise MaskDecoderError(
            f"{path.name} is not a mask decoder: it is not a readable .npz file (an .npy "
            "array or another file renamed?); big_vision's vae-oid.npz is one.")
    arrays = read_decoder_weights(path)  # raises MaskDecoderError with the reason
    empty = sorted(key for key, value in arrays.items() if value.size == 0)
    if empty:
        # A 128x0 codebook passes the shape rules and would decode every mask as blank.
        raise MaskDecoderError(f"{path.name} is not a usable mask decoder: {empty[0]} "
                               "holds no numbers.")


def _install(staged: Path, weights: Path, sha256: str, source: str) -> Path:
    """Check ``staged`` is a decoder, then give it its final name and record its checksum."""
    check_decoder_file(staged)
    record = {"sha256": sha256, "size": staged.stat().st_size, "source": source}
    try:
        write_text_atomic(_record_path(weights), json.dumps(record, indent=2) + "\n")
        move_into_place(staged, weights)
    except OSError as exc:
        raise write_error(exc, weights.name, weights.parent) from exc
    return weights


def import_decoder(models_dir: Path, source: Path) -> Path:
    """Copy a vae-oid.npz the user already has into the models folder; returns its path.

    The file is checked first (an npz with every tensor the decoder needs, of the right
    shapes). Raises ``MaskDecoderError`` for a file that is not a decoder, or a
    ``PaliDeskError`` when it cannot be read or written.
    """
    source = Path(source)
    if not source.is_file():
        raise MaskDecoderError(f"{source} is not a file.")
    try:
        check_decoder_file(source)
    except OSError as exc:
        raise _import_error(exc, source, masks_weights_path(models_dir).parent) from exc
    weights = masks_weights_path(models_dir)
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=weights.parent, prefix=".import-", suffix=".npz")
        os.close(handle)
        staged = Path(name)
        try:
            shutil.copyfile(source, staged)
            # mkstemp makes the file private (0600); the decoder is shared like the models
            # (Ray workers on a shared folder read it): the usual mode for a new file.
            os.chmod(staged, 0o666 & ~_umask())
            return _install(staged, weights, file_sha256(staged), str(source.resolve()))
        finally:
            staged.unlink(missing_ok=True)
    except OSError as exc:
        raise _import_error(exc, source, weights.parent) from exc


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def _import_error(exc: OSError, source: Path, folder: Path) -> PaliDeskError:
    """An OSError while importing, in words that say import (not download)."""
    message = file_errors.sentence(exc, f"import {source.name} into {folder}",
                                   Path(exc.filename) if exc.filename else folder)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskSpaceError(message)
    return MaskDecoderError(message)


def download_decoder(
    models_dir: Path,
    *,
    url: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelFlag | None = None,
) -> Path:
    """Download the decoder into the models folder once; returns its path.

    An installed decoder that matches its record is kept (no download). A partial file
    resumes with an HTTP Range request. The finished file must be a valid decoder before
    it gets its final name. Progress: stage "download", in bytes. Raises Cancelled
    (partial data kept), DiskSpaceError, MaskDecoderError or a DownloadError subclass.
    """
    url = url or decoder_url()
    weights = masks_weights_path(models_dir)
    meter = ByteProgress(progress, 0)
    if decoder_problem(models_dir) is None:
        size = weights.stat().st_size
        meter.total = size
        meter.skipped(size, FILE_NAME, "already downloaded")
        return weights
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, weights.name, weights.parent) from exc
    partial = partial_path(weights)
    digest = hashlib.sha256()
    have = partial.stat().st_size if partial.exists() else 0
    if have:
        with partial.open("rb") as file:
            while block := file.read(1 << 20):
                digest.update(block)
    digest = _fetch(url, partial, have, digest, meter, cancel)
    try:
        return _install(partial, weights, digest.hexdigest(), url)
    except MaskDecoderError as exc:
        partial.unlink(missing_ok=True)
        raise CorruptDownloadError(
            f"The file downloaded from {url} is not a usable mask decoder ({exc}) It was "
            "deleted; try again later, or import a copy with `palidesk masks import`."
        ) from exc


def _fetch(url: str, partial: Path, have: int, digest, meter: ByteProgress,
           cancel: CancelFlag | None):
    """GET ``url`` from byte ``have`` on into ``partial``; returns the running digest."""
    host = urlparse(url).hostname or url
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with httpx2.stream("GET", url, headers=headers, timeout=TIMEOUT,
                           follow_redirects=True) as response:
            if response.status_code == 416:
                if have and _total_size(response, have) == have:
                    return digest  # complete already: an earlier run stopped before installing
                partial.unlink(missing_ok=True)  # our partial does not fit the file
                raise NetworkError(
                    f"{host} refused to continue the earlier download of the mask decoder; "
                    "the partial file was deleted. Try again."
                )
            if response.status_code >= 400:
                raise _http_error(response.status_code, url, host)
            total = _total_size(response, have)
            if have and response.status_code != 206:
                have = 0  # the server sends the whole file: start again
                digest = hashlib.sha256()
            meter.total = total if total else 0
            if have:
                meter.skipped(have, FILE_NAME, "resuming")
            if total:
                check_disk_space(partial.parent, total - have, "the mask decoder")
            with partial.open("ab" if have else "wb") as out:
                for chunk in response.iter_bytes():  # as they arrive: a drop loses none
                    out.write(chunk)
                    digest.update(chunk)
                    meter.received(len(chunk), FILE_NAME)
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled(
                            "The download of the mask decoder was cancelled. What arrived is "
                            "kept; the next download continues from there."
                        )
    except PaliDeskError:
        raise
    except httpx2.TransportError as exc:
        raise network_error(exc, host) from exc
    except httpx2.InvalidURL as exc:
        raise DownloadError(f"{url} is not a valid address.") from exc
    except OSError as exc:
        # Named after the decoder, never the temporary file the bytes gather in.
        raise write_error(exc, partial.name.removesuffix(_PARTIAL_SUFFIX), partial.parent) from exc
    size = partial.stat().st_size
    if total and size < total:
        raise NetworkError(
            f"The connection to {host} ended before the mask decoder was complete. Check "
            "your internet connection and try again; the download continues where it "
            "stopped."
        )
    meter.received(0, FILE_NAME, final=True)
    return digest


def _total_size(response: httpx2.Response, have: int) -> int:
    """The whole file's size from Content-Range (206) or Content-Length (200); 0 if unknown."""
    content_range = response.headers.get("Content-Range", "")
    if response.status_code in (206, 416) and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else 0
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else 0


def _http_error(status: int, url: str, host: str) -> DownloadError:
    if status in (403, 404, 410):
        return DownloadError(
            f"{host} has no mask decoder at {url} (HTTP {status}). If you have a copy of "
            "vae-oid.npz, install it with `palidesk masks import FILE`."
        )
    if status == 429 or status >= 500:
        return NetworkError(
            f"{host} is busy or having trouble (HTTP {status}). Try again in a few minutes; "
            "the download continues where it stopped."
        )
    return DownloadError(f"{host} refused to send the mask decoder (HTTP {status}).")
