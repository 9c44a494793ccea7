"""Download a checkpoint's safe files from Hugging Face: verified, cancellable, in words.

The files are located with huggingface_hub (the metadata request that gives each file's
content id and download address) and go into the shared Hugging Face cache (by default,
so transformers and other tools find the checkpoint too; the library makes the snapshot's
link to each blob) or into a folder of our own. The bytes themselves are fetched by
resumable_fetch.py, not by the library's ``hf_hub_download``: the library (2.x) reads in
10 MiB pieces (a cancel and progress wait for a whole piece: ~40 s at 250 kB/s) and
deletes a file's partial bytes on any failure, so a cancel, a quit or a kill -9 started
the file over. Here every piece that arrives is written through to a partial file named
by the file's content id (``blobs/<etag>.palidesk.incomplete`` in the cache), so bytes of
two commits are never glued together, and the next download continues it with a Range
request, after a cancel, a crash or a restart alike. While a file is written PaliDesk
holds the lock huggingface_hub takes for the same file, so two programs never write it
at once; hub_leftovers.py finds and deletes the partial files nobody continues.

PaliDesk also adds the choice of safe files (hub_files.py), the config check before the
weights are fetched, the free-space check, a checksum check of every file once it is
complete, byte progress in PaliDesk's ProgressEvent shape (several times a second, and
once a second on a link that stalls), a cancel that ends a file within a fraction of a
second, one plain line per retry after a dropped connection, and errors in plain words.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import (
    HfFileMetadata,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import build_hf_headers

from app import file_errors
from app.errors import (
    Cancelled,
    CorruptDownloadError,
    DiskSpaceError,
    DownloadError,
    PaliDeskError,
)
from app.model_files.hf_cache import hub_cache_dir, remember_ref
from app.models.catalog import VariantDims, check_catalog_shapes, read_config_dims
from app.models.checksums import file_matches
from app.models.disk_space import (
    DISK_MARGIN_BYTES,
    check_disk_space,
    format_size,
    gguf_bytes,
    required_disk_bytes,
    same_disk,
)
from app.models.download_progress import ByteProgress
from app.models.hub_errors import describe_transport, hub_errors
from app.models.hub_files import DownloadPlan, RemoteFile, hub_endpoint, plan_download
from app.models.hub_leftovers import cache_partial, cache_partial_lock
from app.models.resumable_fetch import (
    MAX_RETRIES,
    Transfer,
    call_cancellable,
    fetch_to_partial,
    held_lock,
)
from app.progress import CancelFlag, ProgressCallback, no_progress

__all__ = [
    "DownloadPlan",
    "RemoteFile",
    "download_checkpoint",
    "plan_download",
]

CONFIG = "config.json"
# Seconds to wait for a file's metadata (the HEAD request before each file).
METADATA_TIMEOUT_S = 30.0
# Seconds without a byte before a read counts as a dropped connection (then retried).
READ_TIMEOUT_S = 10.0
# What a CDN answers to a signed address that has expired.
EXPIRED_STATUSES = (401, 403, 410)
# Retries after a dropped connection are told here, one plain line each.
log = logging.getLogger("palidesk.download")


def download_checkpoint(
    plan_or_repo_id: DownloadPlan | str,
    dest_dir: Path | None = None,
    *,
    revision: str = "main",
    token: str | None = None,
    endpoint: str | None = None,
    quant_types: Sequence[str] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelFlag | None = None,
    cache_dir: Path | None = None,
    convert_dir: Path | None = None,
) -> Path:
    """Download the config, tokenizer and safetensors files; returns the checkpoint folder.

    ``dest_dir=None`` downloads into the Hugging Face cache (``cache_dir``, default: the
    one HF_HOME / HF_HUB_CACHE name) and returns the commit's snapshot folder there;
    otherwise the files go to ``dest_dir``. A file already there is kept. config.json
    comes first and must describe a PaliGemma 2 model (and, under a catalog name, the
    catalog's shapes) before anything large is fetched. Then the free space is checked:
    for the download alone, or, when ``quant_types`` is given (even empty), also for the
    F16 conversion and those quantized files, sized from the config (on the disk of
    ``convert_dir`` when given and the download goes to another disk). Progress: stage
    "download", done/total in bytes. Raises Cancelled, DiskSpaceError, CatalogError (a
    config that is not the model the name promises) or a DownloadError subclass.
    """
    plan = (plan_or_repo_id if isinstance(plan_or_repo_id, DownloadPlan)
            else plan_download(plan_or_repo_id, revision=revision, token=token,
                               endpoint=endpoint))
    fetcher = _Fetcher(plan, dest_dir, cache_dir, token=token,
                       endpoint=hub_endpoint(endpoint or plan.endpoint), cancel=cancel)
    meter = ByteProgress(progress, plan.total_bytes)
    config = next((f for f in plan.files if f.path == CONFIG), None)
    if config is None:
        raise DownloadError(
            f"{plan.repo_id} has no config.json, so it is not a checkpoint in Transformers "
            "format. PaliDesk converts PaliGemma 2 checkpoints in that format."
        )
    present = {f.path for f in plan.files if fetcher.cached(f) is not None}
    _check_cancel(cancel, plan)
    folder = fetcher.fetch(config, meter).parent
    dims = read_config_dims(folder / CONFIG, plan.repo_id)
    check_catalog_shapes(plan.repo_id, dims, "its config.json")
    have = sum(f.size for f in plan.files if f.path in present or f is config)
    _check_space(plan, quant_types, dims, fetcher.where, convert_dir, have)
    for remote in plan.files:
        if remote is not config:
            _check_cancel(cancel, plan)
            fetcher.fetch(remote, meter)
    if dest_dir is None:
        remember_ref(plan.repo_id, plan.revision, plan.commit, fetcher.cache_dir)
    return folder


def _check_space(plan: DownloadPlan, quant_types: Sequence[str] | None, dims: VariantDims,
                 where: Path, convert_dir: Path | None, have: int) -> None:
    """Free space for the download and, when ``quant_types`` is given, the conversion:
    one sum on one disk, or each part on its own disk (the HF cache may be elsewhere)."""
    download = required_disk_bytes(plan, convert=False) - have
    if quant_types is None:
        check_disk_space(where, download, "the download")
        return
    conversion = gguf_bytes(dims, quant_types)
    if convert_dir is None or same_disk(where, convert_dir):
        check_disk_space(where, download + conversion,
                         "downloading and converting the model")
        return
    check_disk_space(where, download, "the download")
    check_disk_space(convert_dir, conversion + DISK_MARGIN_BYTES, "converting the model")


def write_error(exc: OSError, name: str, folder: Path) -> PaliDeskError:
    """An OSError while writing ``name`` into ``folder``, in words (a full disk is the
    common case). ``name`` is the repository's file, never the library's temporary one."""
    # The words come from the one OSError-to-sentence helper; only the error type (a full
    # disk is a DiskSpaceError the window treats apart) is decided here.
    message = file_errors.sentence(exc, f"download {name} into {folder}", folder / name,
                                   "Files already complete are kept.")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskSpaceError(message)
    return DownloadError(message)


def _check_cancel(cancel: CancelFlag | None, plan: DownloadPlan) -> None:
    if cancel is not None and cancel.cancelled:
        raise _cancelled(plan)


def _cancelled(plan: DownloadPlan) -> Cancelled:
    return Cancelled(
        f"The download of {plan.repo_id} was cancelled. What arrived is kept: the next "
        "download continues where this one stopped."
    )


class _Fetcher:
    """Fetches single files of ``plan`` into the cache or ``dest_dir``, verified."""

    def __init__(self, plan: DownloadPlan, dest_dir: Path | None, cache_dir: Path | None,
                 *, token: str | None, endpoint: str, cancel: CancelFlag | None) -> None:
        self.plan = plan
        self.dest_dir = Path(dest_dir) if dest_dir is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
        self.token = token
        self.endpoint = endpoint
        self.cancel = cancel
        self._checked: dict[str, Path | None] = {}

    @property
    def where(self) -> Path:
        """The folder the bytes are written to (for the free-space check and messages)."""
        return self.dest_dir if self.dest_dir is not None else self.cache_dir

    def cached(self, remote: RemoteFile) -> Path | None:
        """``remote`` already complete at this commit, found without the network."""
        if remote.path not in self._checked:
            self._checked[remote.path] = self._find(remote)
        return self._checked[remote.path]

    def _find(self, remote: RemoteFile) -> Path | None:
        if self.dest_dir is not None:
            path = self.dest_dir / remote.path
            # A local folder has no content-addressed names: check the bytes themselves.
            return path if file_matches(path, remote) else None
        try:
            found = try_to_load_from_cache(self.plan.repo_id, remote.path,
                                           cache_dir=self.cache_dir, revision=self.plan.commit)
        except Exception:  # a revision that is not a commit id: then we do not know
            return None
        if not isinstance(found, str):
            return None
        # Cache files are named by their content id; a wrong size means a damaged blob.
        return Path(found) if Path(found).stat().st_size == remote.size else None

    def fetch(self, remote: RemoteFile, meter: ByteProgress) -> Path:
        """The local path of ``remote``, downloaded unless it is already there."""
        path = self.cached(remote)
        if path is not None:
            meter.skipped(remote.size, remote.path, "already downloaded")
            return path
        try:
            with _plain_http(), _quiet_library(), hub_errors(
                    self.plan.repo_id, token=self.token, endpoint=self.endpoint,
                    revision=self.plan.revision, path=remote.path, gated=self.plan.gated):
                path = self._fetch(remote, meter)
        except PaliDeskError:
            raise
        except OSError as exc:
            raise write_error(exc, remote.path, self.where) from exc
        if remote.size > 1 << 20:
            meter.skipped(0, remote.path, f"checking {format_size(remote.size)}")
        if not file_matches(path, remote):
            _discard(path)
            raise self._corrupt(remote)
        meter.received(0, remote.path, final=True)
        return path

    def _fetch(self, remote: RemoteFile, meter: ByteProgress) -> Path:
        url = hf_hub_url(self.plan.repo_id, remote.path, revision=self.plan.commit,
                         endpoint=self.endpoint)
        metadata = self._metadata(url)
        etag = metadata.etag or remote.sha256 or remote.git_sha1 or "unknown"
        if self.dest_dir is None:
            partial = cache_partial(self.cache_dir, self.plan.repo_id, etag)
            lock = cache_partial_lock(self.cache_dir, self.plan.repo_id, etag)
            final = partial.parent / etag
        else:
            final = self.dest_dir / remote.path
            partial = (self.dest_dir / ".cache" / "huggingface" / "download"
                       / f"{remote.path}.{etag}.palidesk.incomplete")
            lock = partial.with_name(f"{remote.path}.{etag}.lock")
        transfer = self._transfer(metadata.location or url, remote, partial)

        def waiting() -> None:
            meter.note(remote.path, "waiting: another program is downloading this file")

        with held_lock(lock, self.cancel, lambda: _cancelled(self.plan), waiting):
            if not final.exists():
                self._fetch_bytes(transfer, url, remote, meter)
                if not file_matches(partial, remote):
                    partial.unlink(missing_ok=True)
                    raise self._corrupt(remote)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(partial, final)
        if self.dest_dir is not None:
            return final
        # The blob is in place: the library only makes the snapshot's link to it.
        return Path(hf_hub_download(
            self.plan.repo_id, remote.path, revision=self.plan.commit,
            endpoint=self.endpoint, token=self.token, etag_timeout=METADATA_TIMEOUT_S,
            cache_dir=self.cache_dir))

    def _metadata(self, url: str) -> HfFileMetadata:
        """The file's content id and download address (a HEAD request), cancellable."""
        return call_cancellable(
            lambda: get_hf_file_metadata(url, token=self.token, timeout=METADATA_TIMEOUT_S,
                                         endpoint=self.endpoint),
            self.cancel, lambda: _cancelled(self.plan))

    def _transfer(self, location: str, remote: RemoteFile, partial: Path) -> Transfer:
        headers = build_hf_headers(token=self.token)
        if urlparse(location).hostname != urlparse(self.endpoint).hostname:
            headers.pop("authorization", None)  # a signed CDN address: the token stays home
        return Transfer(location, headers, partial, remote.size, remote.path,
                        timeout_s=READ_TIMEOUT_S)

    def _fetch_bytes(self, transfer: Transfer, url: str, remote: RemoteFile,
                     meter: ByteProgress) -> None:
        """``fetch_to_partial``, asking the hub for a new address when the signed CDN
        address it gave has expired (a large file on a slow link outlives it); again
        each time bytes arrived in between, never twice in a row."""
        refreshed = False
        while True:
            before = _size(transfer.partial)
            try:
                fetch_to_partial(transfer, meter, self.cancel, lambda: _cancelled(self.plan),
                                 lambda n, exc: self._tell_retry(remote, n, exc))
                return
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                stuck = refreshed and _size(transfer.partial) == before
                if transfer.url == url or status not in EXPIRED_STATUSES or stuck:
                    raise
            metadata = self._metadata(url)
            transfer = self._transfer(metadata.location or url, remote, transfer.partial)
            refreshed = True

    def _tell_retry(self, remote: RemoteFile, attempt: int, exc: BaseException) -> None:
        log.warning("%s: %s; trying again (%d of %d), keeping what arrived",
                    remote.path, describe_transport(exc), attempt, MAX_RETRIES)

    def _corrupt(self, remote: RemoteFile) -> CorruptDownloadError:
        return CorruptDownloadError(
            f"The download of {remote.path} from {self.plan.repo_id} is corrupted: it "
            "does not match the checksum Hugging Face lists for it. The bad file was "
            "deleted; please try again."
        )


@contextlib.contextmanager
def _quiet_library() -> Iterator[None]:
    """huggingface_hub's own warnings (a retry, with the CDN address, printed through
    two handlers) are left out while PaliDesk fetches: PaliDesk says it in one line."""
    library = logging.getLogger("huggingface_hub")
    previous = library.level
    library.setLevel(logging.ERROR)
    try:
        yield
    finally:
        library.setLevel(previous)


@contextlib.contextmanager
def _plain_http() -> Iterator[None]:
    """Keep huggingface_hub off hf_xet's transfer engine while PaliDesk calls it.

    The bytes come over the hub's HTTP endpoint (resumable_fetch.py; the hub serves
    Xet-stored files over HTTP too, with Range requests). The library is only asked for
    metadata and the snapshot's link to a blob already in place; should it ever fetch
    itself (a blob deleted in between), it must not start hf_xet, whose native threads
    write the bytes where a cancel cannot be relied on to stop them.
    """
    previous = hf_constants.HF_HUB_DISABLE_XET
    hf_constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_DISABLE_XET = previous


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _discard(path: Path) -> None:
    """Delete a bad download: in the cache, the blob and the snapshot's link to it."""
    blob = path.resolve()
    for victim in (path, blob):
        with contextlib.suppress(OSError):  # already gone, or not ours to delete
            victim.unlink(missing_ok=True)
