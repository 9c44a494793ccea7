"""Getting the mask decoder: download (progress, resume, checksum record), import, CLI.

A local HTTP server (tests/fake_hub.py) serves random weights in vae-oid.npz's layout;
nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_hub import FakeHub
from mask_weights import write_random_decoder

from app.errors import (
    Cancelled,
    CorruptDownloadError,
    DownloadError,
    MaskDecoderError,
    NetworkError,
)
from app.models import download_progress
from app.models.mask_decoder import (
    URL_VARIABLE,
    decoder_problem,
    download_decoder,
    import_decoder,
    installed_decoder,
    masks_weights_path,
    read_record,
)
from app.progress import CancelFlag, ProgressEvent

NAME = "vae-oid.npz"


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # A narrow codebook keeps the file small (0.9 MB) while every tensor is checked.
    return write_random_decoder(tmp_path_factory.mktemp("w") / NAME, dim=16).read_bytes()


@pytest.fixture(autouse=True)
def every_progress_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_progress, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


Serve = Callable[..., tuple[FakeHub, str]]


@pytest.fixture
def serve(weights_bytes: bytes) -> Iterator[Serve]:
    """Start a server with ``files`` (default: the decoder); returns (server, its URL)."""
    hubs: list[FakeHub] = []

    def start(files: dict[str, bytes] | None = None, **kwargs: object) -> tuple[FakeHub, str]:
        hub = FakeHub(files or {NAME: weights_bytes}, **kwargs).start()  # type: ignore[arg-type]
        hubs.append(hub)
        return hub, f"{hub.url}/{hub.repo_id}/resolve/main/{NAME}"

    try:
        yield start
    finally:
        for hub in hubs:
            hub.stop()


def test_download_installs_once_with_progress_and_a_checksum_record(
    serve: Serve, tmp_path: Path, weights_bytes: bytes
) -> None:
    hub, url = serve()
    events: list[ProgressEvent] = []
    assert installed_decoder(tmp_path) is None
    path = download_decoder(tmp_path, url=url, progress=events.append)
    assert path == masks_weights_path(tmp_path) == tmp_path / "mask-decoder" / NAME
    assert path.read_bytes() == weights_bytes
    record = read_record(path)
    assert record is not None and record.source == url
    assert record.sha256 == hashlib.sha256(weights_bytes).hexdigest()
    assert installed_decoder(tmp_path) == path
    assert events[-1].stage == "download" and events[-1].done == events[-1].total == len(
        weights_bytes)
    assert not list(path.parent.glob("*.incomplete"))
    download_decoder(tmp_path, url=url)
    assert len(hub.gets_of(NAME)) == 1  # kept, not fetched again


def test_an_interrupted_download_resumes_with_a_range_request(
    serve: Serve, tmp_path: Path, weights_bytes: bytes
) -> None:
    hub, url = serve(mode="interrupt", interrupt_path=NAME, interrupt_after=300_000)
    with pytest.raises(NetworkError, match="try again"):
        download_decoder(tmp_path, url=url)
    partial = masks_weights_path(tmp_path).with_name(NAME + ".incomplete")
    kept = partial.stat().st_size
    assert 0 < kept <= 300_000
    assert installed_decoder(tmp_path) is None
    download_decoder(tmp_path, url=url)
    assert hub.gets_of(NAME)[-1].range == f"bytes={kept}-"
    assert masks_weights_path(tmp_path).read_bytes() == weights_bytes
    assert read_record(masks_weights_path(tmp_path)).sha256 == hashlib.sha256(  # type: ignore[union-attr]
        weights_bytes).hexdigest()


def test_a_server_that_ignores_range_restarts_cleanly(
    serve: Serve, tmp_path: Path, weights_bytes: bytes
) -> None:
    _, url = serve(ranges=False)
    partial = masks_weights_path(tmp_path).with_name(NAME + ".incomplete")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 1000)  # junk that a resume would keep
    download_decoder(tmp_path, url=url)
    assert masks_weights_path(tmp_path).read_bytes() == weights_bytes


def test_cancel_keeps_the_partial_file(serve: Serve, tmp_path: Path) -> None:
    _, url = serve()
    cancel = CancelFlag()

    def stop_soon(event: ProgressEvent) -> None:
        if event.done > 0:
            cancel.cancel()

    with pytest.raises(Cancelled, match="continues from there"):
        download_decoder(tmp_path, url=url, progress=stop_soon, cancel=cancel)
    assert masks_weights_path(tmp_path).with_name(NAME + ".incomplete").stat().st_size > 0
    assert installed_decoder(tmp_path) is None


def test_a_file_that_is_not_a_decoder_is_deleted_not_installed(
    serve: Serve, tmp_path: Path
) -> None:
    _, url = serve({NAME: b"<html>Sign in to continue</html>"})
    with pytest.raises(CorruptDownloadError, match="not a usable mask decoder"):
        download_decoder(tmp_path, url=url)
    assert not any(masks_weights_path(tmp_path).parent.iterdir())


def test_missing_file_and_unreachable_server_are_told_in_words(
    serve: Serve, tmp_path: Path
) -> None:
    hub, url = serve(mode="missing", missing_path=NAME)
    with pytest.raises(DownloadError, match="palidesk masks import"):
        download_decoder(tmp_path, url=url)
    hub.stop()
    with pytest.raises(NetworkError, match=r"could not reach 127\.0\.0\.1"):
        download_decoder(tmp_path, url=url)


def test_a_changed_file_is_noticed_and_downloaded_again(
    serve: Serve, tmp_path: Path, weights_bytes: bytes
) -> None:
    hub, url = serve()
    path = download_decoder(tmp_path, url=url)
    damaged = bytearray(weights_bytes)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    problem = decoder_problem(tmp_path)
    assert problem is not None and "SHA-256 no longer matches" in problem
    assert installed_decoder(tmp_path) is None
    download_decoder(tmp_path, url=url)
    assert path.read_bytes() == weights_bytes and len(hub.gets_of(NAME)) == 2
    assert decoder_problem(tmp_path) is None


def test_import_copies_a_valid_file_and_refuses_others(
    tmp_path: Path, weights_bytes: bytes
) -> None:
    mine = tmp_path / "downloads" / "vae-oid (1).npz"
    mine.parent.mkdir()
    mine.write_bytes(weights_bytes)
    models = tmp_path / "models"
    path = import_decoder(models, mine)
    assert path.read_bytes() == weights_bytes and installed_decoder(models) == path
    assert read_record(path).source == str(mine.resolve())  # type: ignore[union-attr]
    assert mine.exists()  # a copy: the user's file stays

    notes = tmp_path / "notes.npz"
    notes.write_text("hello")
    with pytest.raises(MaskDecoderError, match=r"not a readable \.npz"):
        import_decoder(tmp_path / "other", notes)
    with pytest.raises(MaskDecoderError, match="is not a file"):
        import_decoder(tmp_path / "other", tmp_path / "nope.npz")
    assert not (tmp_path / "other" / "mask-decoder" / NAME).exists()


# --- the command line ---------------------------------------------------------------------


def test_cli_masks_pull_status_and_import(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], weights_bytes: bytes
) -> None:
    from app.cli.main import main

    _, url = serve()
    models = str(tmp_path / "models")
    assert main(["masks", "status", "--models-dir", models]) == 1
    assert "not installed" in capsys.readouterr().out
    monkeypatch.setenv(URL_VARIABLE, url)
    assert main(["masks", "pull", "--models-dir", models]) == 0
    assert "mask decoder installed" in capsys.readouterr().err
    assert main(["masks", "status", "--json", "--models-dir", models]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["installed"] and status["sha256"] == hashlib.sha256(weights_bytes).hexdigest()

    bad = tmp_path / "bad.npz"
    bad.write_text("not weights")
    assert main(["masks", "import", str(bad), "--models-dir", str(tmp_path / "m2")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: bad.npz is not a mask decoder") and "Traceback" not in err


def test_models_pull_brings_the_decoder_with_the_first_model(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main
    from app.models import prepare

    installed: list[str] = []

    def fake_prepare(request, models, progress, cancel=None):  # conversion is tested elsewhere
        installed.append(request.name)
        return models.folder_for(request.name)

    monkeypatch.setattr(prepare, "prepare_model", fake_prepare)
    hub, url = serve()
    monkeypatch.setenv(URL_VARIABLE, url)
    models = tmp_path / "models"
    assert main(["models", "pull", "pg2-tiny", "--models-dir", str(models)]) == 0
    assert installed_decoder(models) is not None
    assert main(["models", "pull", "pg2-other", "--models-dir", str(models)]) == 0
    assert len(hub.gets_of(NAME)) == 1  # only with the first model

    hub.stop()  # a failed decoder download does not fail the model's install
    other = tmp_path / "elsewhere"
    capsys.readouterr()
    assert main(["models", "pull", "pg2-tiny", "--models-dir", str(other)]) == 0
    assert "warning: the model is installed, but the mask decoder is not" in (
        capsys.readouterr().err)
    assert main(["models", "pull", "pg2-tiny", "--no-mask-decoder",
                 "--models-dir", str(other)]) == 0
    assert "mask decoder" not in capsys.readouterr().err


def test_cli_run_refuses_a_bad_mask_decoder_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    bad = tmp_path / "vae-oid.npz"
    bad.write_text("not weights")
    code = main(["run", "--model", str(tmp_path / "no-model"), "--task", "segment",
                 "--classes", "cat", "--mask-decoder", str(bad), "photo.jpg"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: vae-oid.npz is not a mask decoder")
