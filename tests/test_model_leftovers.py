"""Unfinished downloads are shown and can be removed; ``run --model`` takes an installed
model's name (issue 10 item 20)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.errors import DownloadError, ModelFolderError
from app.models.installed import InstalledModels
from app.models.prepare import PrepareRequest, prepare_model
from app.session.model_resolver import resolve_model
from conftest import IMAGES


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """Two leftovers: a refused download's empty folder and a cancelled preparation."""
    root = tmp_path / "models"
    (root / "refused.partial" / "checkpoint").mkdir(parents=True)
    work = root / "paligemma2-3b-mix-224.partial" / "model"
    work.mkdir(parents=True)
    (work / "text-f16.gguf").write_bytes(bytes(2_500_000))
    return root


def test_models_list_shows_unfinished_work_with_its_size(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    assert main(["models", "list", "--models-dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "unfinished" in out
    assert "paligemma2-3b-mix-224" in out and "2.5 MB" in out and "refused" in out
    assert main(["models", "list", "--json", "--models-dir", str(models_dir)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {u["name"]: u["size_bytes"] for u in listing["unfinished"]} == {
        "paligemma2-3b-mix-224": 2_500_000, "refused": 0}
    assert listing["models"] == []


def test_models_remove_deletes_a_leftover_and_says_so(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to delete an empty leftover, then say "No installed model" and exit 1."""
    from app.cli.main import main

    assert main(["models", "remove", "refused", "--models-dir", str(models_dir)]) == 0
    assert "removed refused (0 bytes freed)" in capsys.readouterr().err
    assert not (models_dir / "refused.partial").exists()
    assert main(["models", "remove", "paligemma2-3b-mix-224.partial",
                 "--models-dir", str(models_dir)]) == 0
    assert "2.5 MB freed" in capsys.readouterr().err
    assert InstalledModels(models_dir).leftovers() == []
    assert main(["models", "remove", "refused", "--models-dir", str(models_dir)]) == 1
    assert "No installed model or unfinished download" in capsys.readouterr().err


def test_models_clean_deletes_every_leftover_and_keeps_installed_models(
    models_dir: Path, converted, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    shutil.copytree(converted("pg2-tiny-224"), models_dir / "tiny")
    assert main(["models", "clean", "--models-dir", str(models_dir)]) == 0
    assert "deleted 2 unfinished download(s) (2.5 MB freed)" in capsys.readouterr().err
    assert sorted(p.name for p in models_dir.iterdir()) == ["tiny"]


def test_a_refused_download_leaves_no_empty_folder(tmp_path: Path) -> None:
    models = InstalledModels(tmp_path / "models")

    def refuse(*_args: object, **_kwargs: object) -> Path:
        raise DownloadError("refused")

    with pytest.raises(DownloadError):
        prepare_model(PrepareRequest("x", repo_id="someone/x"), models, downloader=refuse)
    assert models.leftovers() == []


def test_the_clean_up_button_removes_leftovers(qtbot, models_dir: Path) -> None:
    from app.ui.models_dialog import ModelsDialog

    dialog = ModelsDialog(InstalledModels(models_dir))
    qtbot.addWidget(dialog)
    assert dialog.clean_button.isEnabled()
    assert "2 unfinished (2.5 MB)" in dialog.disk_label.text()
    asked: list[str] = []
    dialog.confirm_clean_up = lambda leftovers: asked.extend(x.name for x in leftovers) or False
    dialog.clean_button.click()
    assert len(InstalledModels(models_dir).leftovers()) == 2  # "No" keeps them
    dialog.confirm_clean_up = lambda leftovers: True
    dialog.clean_button.click()
    assert InstalledModels(models_dir).leftovers() == []
    assert sorted(asked) == ["paligemma2-3b-mix-224", "refused"]
    assert "2.5 MB freed" in dialog.status.text()
    assert not dialog.clean_button.isEnabled() and "unfinished" not in dialog.disk_label.text()
    dialog.done(0)


def test_run_accepts_an_installed_models_name(
    tmp_path: Path, converted, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli.main import main
    from app.settings import SettingsStore, default_settings_path
    from app.settings.settings import Settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    models_dir = tmp_path / "models"
    shutil.copytree(converted("pg2-tiny-224"), models_dir / "tiny")
    SettingsStore(default_settings_path()).save(Settings(models_dir=str(models_dir)))
    image = str(IMAGES / "shapes_320x240.png")
    assert main(["run", "--model", "tiny", "--task", "caption", "--max-tokens", "3",
                 "--json", image]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["image"] == image
    assert main(["run", "--model", "nope", "--task", "caption", "--json", image]) == 1
    err = capsys.readouterr().err
    assert "'nope' is neither a model folder nor the name of an installed model" in err
    assert "Installed models: tiny." in err
    assert resolve_model(models_dir / "tiny", tmp_path) == models_dir / "tiny"
    with pytest.raises(ModelFolderError, match="No model is installed yet"):
        resolve_model("tiny", tmp_path / "empty")


HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_killed_downloads_in_the_hugging_face_cache_are_counted_and_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: a kill -9 left the partial files in the cache, where `models list` showed
    "0 bytes" unfinished and `models clean` freed "0 bytes". Only PaliDesk's own files are
    counted, and never one a live process is writing (its lock is held)."""
    import subprocess
    import sys

    from app.cli.main import main
    from app.models.hub_leftovers import cache_partial, cache_partial_lock

    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    models_dir = tmp_path / "models"
    (models_dir / "pg2-killed.partial").mkdir(parents=True)  # what the killed pull left
    killed = cache_partial(cache, "google/pg2-killed", "a" * 64)
    killed.parent.mkdir(parents=True)
    killed.write_bytes(bytes(1_200_000))
    cache_partial_lock(cache, "google/pg2-killed", "a" * 64).parent.mkdir(parents=True)
    cache_partial_lock(cache, "google/pg2-killed", "a" * 64).touch()  # the dead one's lock
    orphan = cache_partial(cache, "someone/orphan", "b" * 64)  # no leftover folder names it
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(bytes(300_000))
    busy = cache_partial(cache, "someone/busy", "c" * 64)
    busy.parent.mkdir(parents=True)
    busy.write_bytes(bytes(500_000))
    # Another program's partial file (huggingface_hub's own name): never ours to touch.
    foreign = killed.parent / f"{'d' * 64}.1a2b3c4d.incomplete"
    foreign.write_bytes(bytes(700_000))
    lock = cache_partial_lock(cache, "someone/busy", "c" * 64)
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["models", "list", "--models-dir", str(models_dir)]) == 0
        out = capsys.readouterr().out
        line = next(x for x in out.splitlines() if "pg2-killed" in x)
        assert "1.2 MB" in line and "0 bytes" not in out.split("unfinished", 1)[1]
        assert "someone/orphan" in out and "300.0 kB" in out and "someone/busy" not in out
        assert main(["models", "list", "--json", "--models-dir", str(models_dir)]) == 0
        listing = json.loads(capsys.readouterr().out)
        assert {u["name"]: u["size_bytes"] for u in listing["unfinished"]} == {
            "pg2-killed": 1_200_000, "someone/orphan": 300_000}

        assert main(["models", "clean", "--models-dir", str(models_dir)]) == 0
        assert ("deleted 1 unfinished download(s) and 2 partial file(s) in the Hugging "
                "Face cache (1.5 MB freed)") in capsys.readouterr().err
        assert not killed.exists() and not orphan.exists()
        assert busy.exists() and foreign.exists()  # being written; another program's
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # Its writer gone, the file is a leftover like the others.
    assert main(["models", "clean", "--models-dir", str(models_dir)]) == 0
    assert "1 partial file(s) in the Hugging Face cache (500.0 kB freed)" in \
        capsys.readouterr().err
    assert not busy.exists() and foreign.exists()


def test_the_window_counts_and_cleans_partial_files_in_the_cache(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.models.hub_leftovers import cache_partial
    from app.ui.models_dialog import ModelsDialog

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    partial = cache_partial(tmp_path / "hf-home" / "hub", "google/pg2-killed", "a" * 64)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(bytes(1_200_000))
    (tmp_path / "models" / "pg2-killed.partial").mkdir(parents=True)
    dialog = ModelsDialog(InstalledModels(tmp_path / "models"))
    qtbot.addWidget(dialog)
    assert "1 unfinished (1.2 MB)" in dialog.disk_label.text()
    dialog.confirm_clean_up = lambda leftovers: True
    dialog.clean_button.click()
    assert not partial.exists() and "1.2 MB freed" in dialog.status.text()
    dialog.done(0)


def test_models_remove_takes_the_partial_files_in_the_cache_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main
    from app.models.hub_leftovers import cache_partial

    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    models_dir = tmp_path / "models"
    (models_dir / "pg2-killed.partial").mkdir(parents=True)
    killed = cache_partial(cache, "google/pg2-killed", "a" * 64)
    orphan = cache_partial(cache, "someone/orphan", "b" * 64)
    for path, size in ((killed, 1_200_000), (orphan, 300_000)):
        path.parent.mkdir(parents=True)
        path.write_bytes(bytes(size))
    assert main(["models", "remove", "pg2-killed", "--models-dir", str(models_dir)]) == 0
    assert "removed pg2-killed (1.2 MB freed)" in capsys.readouterr().err
    assert not killed.exists() and not (models_dir / "pg2-killed.partial").exists()
    assert main(["models", "remove", "someone/orphan", "--models-dir", str(models_dir)]) == 0
    assert "removed someone/orphan (300.0 kB freed)" in capsys.readouterr().err
    assert not orphan.exists()
    assert main(["models", "remove", "someone/orphan", "--models-dir", str(models_dir)]) == 1
    assert "No installed model or unfinished download" in capsys.readouterr().err
