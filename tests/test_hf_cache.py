"""The Hugging Face cache shared with transformers (issue 10 items 18 and 21): checkpoints
already there are found and converted without the network; new ones are downloaded there
(or, by a setting, into PaliDesk's own folder) with huggingface_hub's own download."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import tqdm
from fake_hub import COMMIT, FakeHub
from huggingface_hub import snapshot_download

from app.model_files.hf_cache import (
    cached_checkpoints,
    find_cached_checkpoint,
    hub_cache_dir,
    repo_id_of_snapshot,
)
from app.models.installed import InstalledModels
from app.models.prepare import PrepareRequest, prepare_model
from app.progress import ProgressEvent
from conftest import TINY

SRC = TINY / "pg2-tiny-224"
REPO = "someone/pg2-tiny-mix-224"


@pytest.fixture(autouse=True)
def hub_environment(private_hub: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF_HOME (conftest.py); returns its hub cache."""
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # snapshot_download's bars
    return private_hub / "hub"


def dead_endpoint() -> str:
    """A local address nothing listens on: any attempt to use the network fails."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def fill_cache_like_transformers(cache: Path) -> Path:
    """What ``from_pretrained`` / ``hf download`` leave behind: a full snapshot of main."""
    with FakeHub.from_folder(SRC, repo_id=REPO) as hub:
        return Path(snapshot_download(REPO, endpoint=hub.url, cache_dir=cache))


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    assert hub_cache_dir() == tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache_dir() == tmp_path / "elsewhere"


def test_a_cached_checkpoint_is_found_and_an_incomplete_one_is_not(
    hub_environment: Path,
) -> None:
    snapshot = fill_cache_like_transformers(hub_environment)
    assert snapshot.name == COMMIT
    assert find_cached_checkpoint(REPO) == snapshot
    assert find_cached_checkpoint(REPO, COMMIT) == snapshot
    assert find_cached_checkpoint(REPO, "v2") is None
    assert find_cached_checkpoint("someone/else") is None
    assert repo_id_of_snapshot(snapshot) == REPO and repo_id_of_snapshot(SRC) is None
    [found] = cached_checkpoints()
    assert (found.repo_id, found.commit, found.folder) == (REPO, COMMIT, snapshot)
    assert found.size_bytes >= (SRC / "model.safetensors").stat().st_size

    (snapshot / "model.safetensors").unlink()  # a download that never finished
    assert find_cached_checkpoint(REPO) is None
    assert cached_checkpoints() == []


def test_a_checkpoint_in_the_cache_is_converted_without_the_network(
    hub_environment: Path, tmp_path: Path
) -> None:
    """Issue 10 item 21: someone who ran the model with transformers has it in the cache;
    PaliDesk converts it from there instead of downloading it again (here: offline)."""
    snapshot = fill_cache_like_transformers(hub_environment)
    models = InstalledModels(tmp_path / "models")
    events: list[ProgressEvent] = []

    def no_download(*_args: object, **_kwargs: object) -> Path:
        raise AssertionError("the checkpoint is in the cache: nothing to download")

    folder = prepare_model(
        PrepareRequest("mix", ("F16",), repo_id=REPO, endpoint=dead_endpoint()),
        models, progress=events.append, downloader=no_download)
    assert any("already in the Hugging Face cache" in e.message for e in events)
    installed = models.get("mix")
    assert installed is not None and installed.folder == folder
    assert installed.manifest.source["name"] == REPO
    assert installed.manifest.source["path"] == str(snapshot.resolve())
    assert (snapshot / "model.safetensors").exists()  # the shared copy stays


def test_models_pull_downloads_into_the_cache_unless_told_otherwise(
    hub_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli.main import main

    models_dir = tmp_path / "models"
    with FakeHub.from_folder(SRC, repo_id=REPO) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["models", "pull", REPO, "--quant", "F16", "--name", "shared",
                     "--models-dir", str(models_dir)]) == 0
        assert find_cached_checkpoint(REPO) is not None  # transformers finds it now
        fetched = len(hub.gets_of("model.safetensors"))
        assert fetched == 1
        # Own folder: fetched into the work folder and deleted once prepared.
        shutil.rmtree(hub_environment)
        assert main(["models", "pull", REPO, "--quant", "F16", "--name", "own",
                     "--no-hf-cache", "--models-dir", str(models_dir)]) == 0
        assert len(hub.gets_of("model.safetensors")) == 2
        assert find_cached_checkpoint(REPO) is None
    # (The mask decoder comes along with the first model when the hub serves it.)
    assert sorted(p.name for p in models_dir.iterdir() if p.name != "mask-decoder") == [
        "own", "shared"]
    capsys.readouterr()
    assert main(["models", "list", "--json", "--models-dir", str(models_dir)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {m["name"]: m["source"] for m in listing["models"]} == {"own": REPO, "shared": REPO}
    assert listing["hf_cache"]["folder"] == str(hub_environment)


def test_models_list_shows_what_the_cache_holds(
    hub_environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    snapshot = fill_cache_like_transformers(hub_environment)
    assert main(["models", "list", "--models-dir", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "in the Hugging Face cache" in out and REPO in out and COMMIT[:12] in out
    assert main(["models", "list", "--json", "--models-dir", str(tmp_path / "m")]) == 0
    [entry] = json.loads(capsys.readouterr().out)["hf_cache"]["checkpoints"]
    assert entry["repo_id"] == REPO and entry["folder"] == str(snapshot)


def test_the_setting_defaults_to_the_shared_cache_and_survives_a_reload(
    tmp_path: Path,
) -> None:
    from app.settings.settings import Settings
    from app.settings.settings_store import SettingsStore

    assert Settings().download_to_hf_cache is True
    store = SettingsStore(tmp_path / "settings.json")
    store.save(Settings(download_to_hf_cache=False))
    assert store.load().settings.download_to_hf_cache is False
    (tmp_path / "settings.json").write_text(json.dumps(
        {"schema_version": 1, "download_to_hf_cache": "yes"}))
    loaded = store.load()
    assert loaded.settings.download_to_hf_cache is True  # a wrong type falls back
    assert loaded.warning is not None and "download_to_hf_cache" in loaded.warning


def test_the_models_dialog_uses_the_setting_and_tells_what_is_cached(
    qtbot, hub_environment: Path, tmp_path: Path
) -> None:
    from app.models.catalog import CATALOG
    from app.ui.models_dialog import ModelsDialog

    entry = CATALOG[0]
    with FakeHub.from_folder(SRC, repo_id=entry.repo_id) as hub:
        snapshot_download(entry.repo_id, endpoint=hub.url, cache_dir=hub_environment)
    dialog = ModelsDialog(InstalledModels(tmp_path / "models"), use_hf_cache=False)
    qtbot.addWidget(dialog)
    requests: list[PrepareRequest] = []
    dialog.start = requests.append
    dialog.catalog.selectRow(0)
    assert "already in your Hugging Face cache" in dialog.choice_label.text()
    dialog.catalog.selectRow(1)
    assert "already in your Hugging Face cache" not in dialog.choice_label.text()
    dialog.prepare_selected()
    assert requests[0].repo_id == CATALOG[1].repo_id and requests[0].use_hf_cache is False
    # A Hugging Face cache snapshot imported as a folder is named after its repository.
    dialog.ask_directory = lambda: find_cached_checkpoint(entry.repo_id)
    dialog.import_folder()
    assert requests[1].name == entry.name
    assert requests[1].source_name == entry.repo_id
    dialog.done(0)
