"""Download a checkpoint's safe files from Hugging Face: verified, cancellable, in words.

The bytes are fetched by huggingface_hub's own ``hf_hub_download``: into the shared
Hugging Face cache (by default, so transformers and other tools find the checkpoint
too) or into a folder of our own (``local_dir``). The library brings what a download
needs: a resume with a Range request when the connection drops, partial files named by
the file's content id (the LFS sha256) so bytes of two commits are never glued together,
every file taken from one commit, and a lock so two processes never write the same file.
Files come over the hub's HTTP endpoint, never hf_xet's native transfer (see
``_plain_http``). PaliDesk adds what the library leaves out: the choice of safe files
(hub_files.py), the config check before the weights are fetched, the free-space check,
a checksum check of every file once it is complete (the library checks sizes only),
byte progress in PaliDesk's ProgressEvent shape, a cancel between chunks, and errors in
plain words.

A file interrupted by a cancel or by a quit starts over on the next download: the
library (2.x) writes each attempt to a temporary file of its own and deletes it on
failure. Files already complete are kept.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator, Sequence
from pathlib import Path

from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download, try_to_load_from_cache

from app import file_errors
from app.errors import (
    Cancelled,
    CorruptDownloadError,
    DiskSpaceError,
    DownloadError,
    NetworkError,
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
from app.models.hub_errors import hub_errors
from app.models.hub_files import DownloadPlan, RemoteFile, hub_endpoint, hub_host, plan_download
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
        raise Cancelled(
            f"The download of {plan.repo_id} was cancelled. Files already complete are "
            "kept; the next download fetches only the rest."
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
        place = ({"cache_dir": self.cache_dir} if self.dest_dir is None
                 else {"local_dir": self.dest_dir, "cache_dir": self.cache_dir})
        bar = _progress_bar_class(meter, remote.path, lambda: _check_cancel(self.cancel,
                                                                             self.plan))
        try:
            with _plain_http(), hub_errors(self.plan.repo_id, token=self.token,
                                           endpoint=self.endpoint,
                                           revision=self.plan.revision, path=remote.path,
                                           gated=self.plan.gated):
                path = Path(hf_hub_download(
                    self.plan.repo_id, remote.path, revision=self.plan.commit,
                    endpoint=self.endpoint, token=self.token, tqdm_class=bar,
                    etag_timeout=METADATA_TIMEOUT_S, **place))
        except PaliDeskError:
            raise
        except OSError as exc:
            if exc.errno is None:  # the library's size check: the connection ended early
                raise NetworkError(
                    f"The connection to {hub_host(self.endpoint)} ended before "
                    f"{remote.path} was complete. Check your internet connection and try "
                    "again; files already complete are kept."
                ) from exc
            raise write_error(exc, remote.path, self.where) from exc
        if remote.size > 1 << 20:
            meter.skipped(0, remote.path, f"checking {format_size(remote.size)}")
        if not file_matches(path, remote):
            _discard(path)
            raise CorruptDownloadError(
                f"The download of {remote.path} from {self.plan.repo_id} is corrupted: it "
                "does not match the checksum Hugging Face lists for it. The bad file was "
                "deleted; please try again."
            )
        meter.received(0, remote.path, final=True)
        return path


@contextlib.contextmanager
def _plain_http() -> Iterator[None]:
    """Fetch over the hub's HTTP endpoint, not through hf_xet's transfer engine.

    With hf_xet the bytes are written by native threads and progress arrives through a
    callback from them, where a cancel (an exception) cannot be relied on to stop the
    transfer. Over HTTP every chunk passes through Python: the cancel stops the file at
    once, as before. The hub serves Xet-stored files over HTTP too (with Range requests).
    """
    previous = hf_constants.HF_HUB_DISABLE_XET
    hf_constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_DISABLE_XET = previous


def _discard(path: Path) -> None:
    """Delete a bad download: in the cache, the blob and the snapshot's link to it."""
    blob = path.resolve()
    for victim in (path, blob):
        with contextlib.suppress(OSError):  # already gone, or not ours to delete
            victim.unlink(missing_ok=True)


def _progress_bar_class(meter: ByteProgress, name: str, check_cancel) -> type:
    """A class huggingface_hub instantiates as its progress bar (``tqdm_class``).

    Not a tqdm subclass, so the library passes only the bar's arguments and draws
    nothing. ``update`` is called once per chunk (10 MB at most): the bytes go to
    ``meter`` and a cancel raises Cancelled there, which ends the download at once.
    """

    class FileProgress:
        def __init__(self, *_args: object, initial: int = 0, **_kwargs: object) -> None:
            self.n = 0
            if initial:
                self.update(initial)

        def update(self, n: float | None = 1) -> None:
            if not n:
                return
            if n < 0:  # the server ignored a Range request: the bytes so far are dropped
                meter.discarded(int(-n))
            else:
                meter.received(int(n), name)
            self.n += int(n)
            check_cancel()

        def update_transfer(self, n: float | None = 1) -> None:
            pass  # bytes on the wire (Xet): the written bytes above are what we count

        def set_postfix_str(self, *_args: object, **_kwargs: object) -> None:
            pass

        set_transfer_postfix_str = set_postfix_str
        refresh = set_postfix_str

        def close(self) -> None:
            pass

        def __enter__(self) -> FileProgress:
            return self

        def __exit__(self, *_exc: object) -> None:
            pass

    return FileProgress
