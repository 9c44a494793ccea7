"""Downloads from a local server that answers like the Hugging Face hub (tests/fake_hub.py).

PaliDesk's download (huggingface_hub for the metadata and the cache's links, its own
resumable fetch for the bytes) talks to the fake hub (``endpoint=`` or HF_ENDPOINT).
Covers: the safe file selection, a full download into a folder and into the Hugging Face
cache, resume after a dropped connection, a cancel, a repository that moves
on between two tries, gated and private repositories, a missing file, a corrupted file,
a network that is down, the free-space check, a disk that fills up, the progress
messages and ``palidesk models pull``.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_hub import COMMIT, TOKEN, FakeHub
from huggingface_hub import (
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub import constants as hf_constants
from huggingface_hub.hf_api import RepoFile

from app.errors import (
    Cancelled,
    CorruptDownloadError,
    DiskSpaceError,
    DownloadError,
    HubNotFoundError,
    LicenceNotAcceptedError,
    NetworkError,
    NotLoggedInError,
)
from app.models import catalog, download_progress
from app.models.disk_space import DISK_MARGIN_BYTES, required_disk_bytes
from app.models.download import (
    DownloadPlan,
    RemoteFile,
    download_checkpoint,
    plan_download,
    write_error,
)
from app.models.download_progress import ByteProgress
from app.progress import CancelFlag, ProgressEvent, format_duration
from conftest import TINY

SRC = TINY / "pg2-tiny-224"
REPO = "google/pg2-tiny-224"
WEIGHTS = "model.safetensors"
PICKLE = b"\x80\x04\x95 not to be downloaded"
EXPECTED = sorted(p.name for p in SRC.iterdir())
CHUNK = 64 << 10
Serve = Callable[..., FakeHub]  # the ``serve`` fixture: mode, options -> started hub


@pytest.fixture(autouse=True)
def hub_environment(private_hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private HF_HOME (conftest.py), and every progress event delivered."""
    monkeypatch.setattr(download_progress, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(download_progress, "MIN_MEASURE_S", 0.0)  # a tiny download is quick
    # For the library's own hf_hub_download (the fidelity test): it reads in 10 MB chunks,
    # the tiny weights are 1.3 MB. PaliDesk's fetch writes each socket read as it comes.
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a fake hub serving the tiny checkpoint plus a pickle file; always stopped."""
    hubs: list[FakeHub] = []

    def start(mode: str = "normal", **kwargs: object) -> FakeHub:
        hub = FakeHub.from_folder(SRC, {"pytorch_model.bin": PICKLE}, mode=mode, **kwargs)
        hubs.append(hub.start())
        return hub

    try:
        yield start
    finally:
        for hub in hubs:
            hub.stop()


def visible(dest: Path) -> list[str]:
    """The files of ``dest`` without huggingface_hub's bookkeeping folder (``.cache``)."""
    return sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))


def assert_complete(dest: Path) -> None:
    assert visible(dest) == EXPECTED
    for name in EXPECTED:
        assert (dest / name).read_bytes() == (SRC / name).read_bytes(), name


def test_plan_keeps_config_tokenizer_and_safetensors_only(serve: Serve) -> None:
    hub = serve()
    plan = plan_download(REPO, endpoint=hub.url)
    assert plan.commit == COMMIT and plan.repo_id == REPO
    assert sorted(f.path for f in plan.files) == EXPECTED  # no pytorch_model.bin
    assert plan.files[-1].path == WEIGHTS  # small files first
    weights = plan.files[-1]
    assert weights.size == (SRC / WEIGHTS).stat().st_size and len(weights.sha256 or "") == 64
    assert all(f.git_sha1 for f in plan.files if f.path != WEIGHTS)
    assert plan.total_bytes == sum((SRC / n).stat().st_size for n in EXPECTED)


def test_full_download(serve: Serve, tmp_path: Path) -> None:
    hub = serve()
    events: list[ProgressEvent] = []
    dest = download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url,
                               progress=events.append)
    assert_complete(dest)
    assert not any(r.path.endswith(".bin") for r in hub.requests)
    assert {e.stage for e in events} == {"download"}
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == events[-1].total
    assert events[-1].total == sum((SRC / n).stat().st_size for n in EXPECTED)
    assert any("MB/s" in e.message and "left" in e.message for e in events)


def test_complete_files_are_not_fetched_again(serve: Serve, tmp_path: Path) -> None:
    hub = serve()
    download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url)
    fetched = len(hub.gets_of(WEIGHTS))
    events: list[ProgressEvent] = []
    download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url, progress=events.append)
    assert len(hub.gets_of(WEIGHTS)) == fetched == 1
    assert all("already downloaded" in e.message for e in events)
    assert events[-1].done == events[-1].total


def test_interrupted_download_resumes_with_a_range_request(
    serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A dropped connection is resumed from every byte that arrived, told in one line."""
    hub = serve("interrupt", interrupt_after=300_000)
    dest = download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url)
    first, second = hub.gets_of(WEIGHTS)
    assert first.range is None and first.body_bytes == 300_000
    kept = 300_000  # written through as it arrived, not in whole 10 MiB chunks
    assert second.range == f"bytes={kept}-" and second.status == 206
    assert second.body_bytes == (SRC / WEIGHTS).stat().st_size - kept
    assert_complete(dest)


def test_server_ignoring_range_restarts_the_file(serve: Serve, tmp_path: Path) -> None:
    hub = serve("interrupt", interrupt_after=300_000, ranges=False)
    events: list[ProgressEvent] = []
    dest = download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url,
                               progress=events.append)
    second = hub.gets_of(WEIGHTS)[1]
    assert second.range is not None and second.status == 200
    assert second.body_bytes == (SRC / WEIGHTS).stat().st_size
    assert all(e.done <= e.total for e in events) and events[-1].done == events[-1].total
    assert_complete(dest)


def test_cancel_stops_at_once_and_keeps_complete_files(serve: Serve, tmp_path: Path) -> None:
    hub = serve()
    dest = tmp_path / "ckpt"
    cancel = CancelFlag()
    seen: list[ProgressEvent] = []

    def cancel_in_weights(event: ProgressEvent) -> None:
        seen.append(event)
        if event.message.startswith(WEIGHTS):
            cancel.cancel()

    with pytest.raises(Cancelled, match="cancelled"):
        download_checkpoint(REPO, dest, endpoint=hub.url, progress=cancel_in_weights,
                            cancel=cancel)
    assert sum(e.message.startswith(WEIGHTS) for e in seen) == 1  # stopped at once
    assert visible(dest) == [n for n in EXPECTED if n != WEIGHTS]  # no half file

    download_checkpoint(REPO, dest, endpoint=hub.url, cancel=CancelFlag())
    assert len(hub.gets_of("config.json")) == 1  # complete files are not fetched again
    assert_complete(dest)


def test_xet_stored_files_come_over_http_where_a_cancel_reaches_them(
    serve: Serve, tmp_path: Path
) -> None:
    """hf_xet writes with native threads where a cancel cannot be relied on to arrive."""
    hub = serve(xet=True)
    cancel = CancelFlag()

    def cancel_in_weights(event: ProgressEvent) -> None:
        if event.message.startswith(WEIGHTS):
            cancel.cancel()

    with pytest.raises(Cancelled):
        download_checkpoint(REPO, endpoint=hub.url, progress=cancel_in_weights, cancel=cancel)
    assert_complete(download_checkpoint(REPO, endpoint=hub.url))
    assert not any("xet-read-token" in r.path for r in hub.requests)
    assert len(hub.gets_of(WEIGHTS)) == 2 and hf_constants.HF_HUB_DISABLE_XET is False


def test_cancel_after_the_first_event(serve: Serve, tmp_path: Path) -> None:
    hub = serve()
    cancel = CancelFlag()
    with pytest.raises(Cancelled):
        download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url,
                            progress=lambda _: cancel.cancel(), cancel=cancel)
    assert [r.path.rsplit("/", 1)[-1] for r in hub.requests if r.method == "GET"
            and "/resolve/" in r.path] == ["config.json"]
    download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url)
    assert_complete(tmp_path / "ckpt")


def test_a_repository_that_moves_on_never_glues_two_commits(serve: Serve,
                                                            tmp_path: Path) -> None:
    """Issue 10 item 18: cancelled in the weights of one commit, retried after the
    repository moved on: the new commit's bytes arrive whole, not appended to the old."""
    hub = serve()
    cancel = CancelFlag()

    def cancel_in_weights(event: ProgressEvent) -> None:
        if event.message.startswith(WEIGHTS):
            cancel.cancel()

    with pytest.raises(Cancelled):
        download_checkpoint(REPO, progress=cancel_in_weights, cancel=cancel, endpoint=hub.url)
    old = (SRC / WEIGHTS).read_bytes()
    new = old[:-4096] + bytes(4096)  # same size, other content: the worst case for a resume
    new_commit = "fedcba9876543210fedcba9876543210fedcba98"
    hub.publish({**hub.files, WEIGHTS: new}, new_commit)
    folder = download_checkpoint(REPO, endpoint=hub.url)
    assert folder.name == new_commit
    assert (folder / WEIGHTS).read_bytes() == new
    assert hub.gets_of(WEIGHTS)[-1].range is None  # fetched whole, not resumed


def test_download_goes_to_the_hugging_face_cache_by_default(
    serve: Serve, tmp_path: Path
) -> None:
    """Issue 10 item 21: no destination -> the shared cache, where transformers looks."""
    hub = serve()
    folder = download_checkpoint(REPO, endpoint=hub.url)
    cache = tmp_path / "hf-home" / "hub"
    assert folder == cache / "models--google--pg2-tiny-224" / "snapshots" / COMMIT
    assert_complete(folder)
    found = try_to_load_from_cache(REPO, WEIGHTS, cache_dir=cache)
    assert isinstance(found, str) and Path(found).read_bytes() == (SRC / WEIGHTS).read_bytes()
    # A second download finds every file there and fetches nothing.
    gets = len([r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path])
    events: list[ProgressEvent] = []
    assert download_checkpoint(REPO, endpoint=hub.url, progress=events.append) == folder
    assert len([r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]) == gets
    assert all("already downloaded" in e.message for e in events)


def test_private_repo_needs_a_token(serve: Serve, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    hub = serve("token")
    with pytest.raises(NotLoggedInError) as error:
        download_checkpoint(REPO, tmp_path / "a", endpoint=hub.url)
    assert "`hf auth login`" in str(error.value) and "HF_TOKEN" in str(error.value)
    with pytest.raises(NotLoggedInError, match="did not accept your access token"):
        download_checkpoint(REPO, tmp_path / "b", endpoint=hub.url, token="hf_wrong")

    download_checkpoint(REPO, tmp_path / "c", endpoint=hub.url, token=TOKEN)
    assert_complete(tmp_path / "c")
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the library's own token lookup
    download_checkpoint(REPO, tmp_path / "d", endpoint=hub.url)
    assert_complete(tmp_path / "d")
    assert all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests[-len(EXPECTED):])


def test_gated_repo_without_login_and_without_licence(serve: Serve, tmp_path: Path) -> None:
    hub = serve("gated")
    page = f"https://huggingface.co/{REPO}"
    with pytest.raises(NotLoggedInError) as error:
        download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url)
    assert "`hf auth login`" in str(error.value) and page in str(error.value)
    with pytest.raises(LicenceNotAcceptedError) as error:
        download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url, token=TOKEN)
    assert page in str(error.value) and "accept the licence" in str(error.value)
    assert not (tmp_path / "ckpt").exists()  # refused before anything was written


def test_missing_file_and_missing_repo(serve: Serve, tmp_path: Path) -> None:
    hub = serve("missing")
    with pytest.raises(HubNotFoundError, match=r"no file tokenizer\.json in google/pg2-tiny"):
        download_checkpoint(REPO, tmp_path / "ckpt", endpoint=hub.url)
    # Like the real hub: 401 to anonymous users (it may be private), 404 once logged in.
    with pytest.raises(NotLoggedInError, match="or the name is wrong"):
        plan_download("google/nope", endpoint=hub.url)
    with pytest.raises(HubNotFoundError, match="There is no model called google/nope"):
        plan_download("google/nope", endpoint=hub.url, token=TOKEN)
    with pytest.raises(HubNotFoundError, match="no revision called 'v9'"):
        plan_download(REPO, revision="v9", endpoint=hub.url)


def test_corrupted_file_is_deleted(serve: Serve, tmp_path: Path) -> None:
    hub = serve("corrupt")
    dest = tmp_path / "ckpt"
    with pytest.raises(CorruptDownloadError, match=r"corrupted.*try again"):
        download_checkpoint(REPO, dest, endpoint=hub.url)
    assert not (dest / WEIGHTS).exists()
    assert visible(dest) == [n for n in EXPECTED if n != WEIGHTS]
    # In the cache, the bad blob goes too: nothing can pick it up later.
    with pytest.raises(CorruptDownloadError):
        download_checkpoint(REPO, endpoint=hub.url)
    cache = tmp_path / "hf-home" / "hub"
    assert try_to_load_from_cache(REPO, WEIGHTS, cache_dir=cache) is None
    assert not list((cache / "models--google--pg2-tiny-224" / "blobs").glob(
        hashlib.sha256((SRC / WEIGHTS).read_bytes()).hexdigest() + "*"))


def test_repo_without_safetensors_is_refused(tmp_path: Path) -> None:
    files = {"config.json": b"{}", "pytorch_model.bin": PICKLE}
    with FakeHub(files, REPO) as hub, pytest.raises(DownloadError) as error:
        plan_download(REPO, endpoint=hub.url)
    assert "no .safetensors weights" in str(error.value)
    assert "pytorch_model.bin" in str(error.value)
    assert not any("/resolve/" in r.path for r in hub.requests)


def test_network_down(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NetworkError) as error:
        download_checkpoint(REPO, tmp_path / "ckpt", endpoint=f"http://127.0.0.1:{port}")
    assert str(error.value).startswith("PaliDesk could not reach 127.0.0.1")
    assert not (tmp_path / "ckpt").exists()


def test_not_enough_disk_space_stops_before_downloading(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = serve()
    plan = plan_download(REPO, endpoint=hub.url)
    free = 600 << 20
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(
        10 << 30, (10 << 30) - free, free))
    with pytest.raises(DiskSpaceError) as error:
        download_checkpoint(plan, tmp_path / "ckpt", quant_types=["Q4_K_M"])
    message = str(error.value)
    assert "needs about 1.1 GB" in message and "only 629.1 MB is free" in message
    assert not hub.gets_of(WEIGHTS)  # only the config was fetched, to size the model


def test_space_for_the_conversion_is_checked_where_the_model_goes(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hugging Face cache and the models folder may be on two disks."""
    from app.models import download

    hub = serve()
    cache, models = tmp_path / "cache-disk", tmp_path / "models-disk"
    cache.mkdir()
    models.mkdir()
    free = {cache: 10 << 30, models: 5 << 20}
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(
        20 << 30, 0, next((f for p, f in free.items() if Path(path).is_relative_to(p)),
                          20 << 30)))
    monkeypatch.setattr(download, "same_disk", lambda _a, _b: False)
    with pytest.raises(DiskSpaceError) as error:
        download_checkpoint(REPO, endpoint=hub.url, cache_dir=cache, quant_types=["Q8_0"],
                            convert_dir=models)
    assert f"in {models}: converting the model needs about" in str(error.value)
    assert not hub.gets_of(WEIGHTS)
    free[models] = 10 << 30  # room on both disks: it goes ahead
    download_checkpoint(REPO, endpoint=hub.url, cache_dir=cache, quant_types=["Q8_0"],
                        convert_dir=models)


def test_required_disk_bytes_counts_conversion_and_quants(serve: Serve) -> None:
    plan = plan_download(REPO, endpoint=serve().url)  # not in the catalog: ratio estimate
    weights, base = plan.weights_bytes, plan.total_bytes + DISK_MARGIN_BYTES
    assert required_disk_bytes(plan, convert=False) == base
    assert required_disk_bytes(plan, ["q8_0", "F16"]) == base + weights + int(weights * 0.54)

    entry = catalog.find("paligemma2-3b-pt-224")  # in the catalog: its computed sizes
    real = DownloadPlan(entry.repo_id, "main", COMMIT,
                        [RemoteFile(WEIGHTS, entry.download_bytes())])
    assert required_disk_bytes(real, ["Q4_K_M"]) == (
        entry.download_bytes() + DISK_MARGIN_BYTES + entry.quant_file_bytes("F16")
        + entry.text_file_bytes("Q4_K_M"))


def test_full_disk_while_writing_is_a_disk_space_error(tmp_path: Path) -> None:
    error = write_error(OSError(errno.ENOSPC, "No space left on device"), "x.bin", tmp_path)
    assert isinstance(error, DiskSpaceError) and "disk is full" in str(error)


def test_a_disk_filling_up_is_told_with_the_real_file_name(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 item 20: the message names the repository's file, not a temporary one."""
    hub = serve()
    real_open = Path.open

    class FullDisk:
        def __init__(self, handle) -> None:
            self.handle = handle
            self.written = 0

        def write(self, data: bytes) -> int:
            self.written += len(data)
            if self.written < 1_000_000:  # room for the small files, not for the weights
                return self.handle.write(data)
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    def open_on_a_full_disk(self: Path, mode: str = "r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        return FullDisk(handle) if "w" in mode and ".incomplete" in self.name else handle

    monkeypatch.setattr(Path, "open", open_on_a_full_disk)
    with pytest.raises(DiskSpaceError) as error:
        download_checkpoint(REPO, endpoint=hub.url)
    message = str(error.value)
    assert f"The disk is full, so PaliDesk could not download {WEIGHTS} into" in message
    assert ".incomplete" not in message


def test_progress_messages_show_speed_and_time_left() -> None:
    now = [100.0]
    events: list[ProgressEvent] = []
    meter = ByteProgress(events.append, total=95_000_000, interval_s=1.0,
                         clock=lambda: now[0])
    meter.skipped(20_000_000, WEIGHTS, "resuming after 20.0 MB")
    for _ in range(4):
        now[0] += 0.5
        meter.received(5_000_000, WEIGHTS)  # 10 MB/s
    assert [e.done for e in events] == [20_000_000, 25_000_000, 35_000_000]  # throttled
    assert events[-1].message == (f"{WEIGHTS}: 35.0 MB of 95.0 MB, 10.0 MB/s, "
                                  "about 6 s left")
    assert format_duration(200) == "3 min 20 s" and format_duration(3900) == "1 h 05 min"


def test_fake_hub_also_serves_huggingface_hub_downloads(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake hub is faithful enough for the library's own listing and download paths."""
    import tqdm

    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # no tqdm monitor thread left
    hub = serve()
    tree = {f.path: f for f in HfApi(endpoint=hub.url).list_repo_tree(REPO)
            if isinstance(f, RepoFile)}
    assert set(tree) == {*EXPECTED, "pytorch_model.bin"}
    assert tree[WEIGHTS].lfs is not None and tree[WEIGHTS].lfs.size == tree[WEIGHTS].size
    metadata = get_hf_file_metadata(hf_hub_url(REPO, WEIGHTS, endpoint=hub.url))
    assert metadata.commit_hash == COMMIT and metadata.size == tree[WEIGHTS].size
    assert metadata.etag == tree[WEIGHTS].lfs.sha256
    path = hf_hub_download(REPO, WEIGHTS, endpoint=hub.url, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == (SRC / WEIGHTS).read_bytes()


def test_cli_models_pull(serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli.main import main

    hub = serve()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert main(["models", "pull", "pg2-tiny-224", "--dest", str(tmp_path / "ckpt")]) == 0
    assert_complete(tmp_path / "ckpt")
    err = capsys.readouterr().err
    assert "download:" in err and f"downloaded {REPO}" in err

    assert main(["models", "pull", "google/nope", "--dest", str(tmp_path / "x"),
                 "--token", TOKEN]) == 1
    assert "error: There is no model called google/nope" in capsys.readouterr().err
