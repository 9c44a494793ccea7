"""Prepare pipeline and installed models: import, resume after cancel, verify, remove."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.errors import Cancelled, ModelFolderError
from app.models.installed import InstalledModels
from app.models.prepare import PrepareRequest, prepare_model
from app.progress import CancelFlag, ProgressEvent
from conftest import TINY

SRC = TINY / "pg2-tiny-224"


@pytest.fixture(autouse=True)
def private_hf_cache(private_hub: Path) -> None:
    """Never look into (or write to) the Hugging Face cache of the person running tests."""


def test_import_a_hugging_face_folder(tmp_path: Path) -> None:
    models = InstalledModels(tmp_path / "models")
    stages: list[str] = []
    folder = prepare_model(PrepareRequest("tiny", ("Q8_0",), local_path=SRC), models,
                           progress=lambda e: stages.append(e.stage))
    assert folder == tmp_path / "models" / "tiny"
    installed = models.list()
    assert [m.name for m in installed] == ["tiny"]
    assert set(installed[0].text_types) == {"F16", "Q8_0"}
    assert {"convert text", "convert vision", "quantize", "verify", "done"} <= set(stages)
    assert not (tmp_path / "models" / "tiny.partial").exists()
    assert models.disk_use() == installed[0].size_bytes > 0


def test_cancelled_prepare_is_not_listed_and_resumes(tmp_path: Path) -> None:
    models = InstalledModels(tmp_path / "models")
    cancel = CancelFlag()

    def stop_in_quantize(event: ProgressEvent) -> None:
        if event.stage == "verify":
            cancel.cancel()

    calls: list[str] = []

    def downloader(repo_id, dest, *, progress, cancel, token, endpoint, quant_types,
                   revision, cache_dir, convert_dir) -> Path:
        calls.append(repo_id)
        if not dest.exists():
            shutil.copytree(SRC, dest)
        return dest

    request = PrepareRequest("tiny", ("Q4_K_M",), repo_id="google/tiny", use_hf_cache=False)
    with pytest.raises(Cancelled):
        # Cancel arrives after quantizing, before registering: work stays in .partial.
        prepare_model(request, models, progress=stop_in_quantize, cancel=cancel,
                      downloader=downloader)
    assert models.list() == []
    work = tmp_path / "models" / "tiny.partial" / "model"
    assert (work / "text-q4_k_m.gguf").exists()
    mtime = (work / "text-f16.gguf").stat().st_mtime_ns
    stages: list[str] = []
    prepare_model(request, models, progress=lambda e: stages.append(e.stage),
                  downloader=downloader)
    assert calls == ["google/tiny", "google/tiny"]
    assert "convert text" not in stages and "quantize" not in stages  # kept, not redone
    installed = models.get("tiny")
    assert installed is not None
    assert (installed.folder / "text-f16.gguf").stat().st_mtime_ns == mtime


def test_import_an_existing_palidesk_folder_and_remove_it(tmp_path: Path, converted) -> None:
    models = InstalledModels(tmp_path / "models")
    prepare_model(PrepareRequest("copy", ("F16",), local_path=converted("pg2-tiny-224")),
                  models)
    installed = models.get("copy")
    assert installed is not None and "Q4_K_M" in installed.text_types
    with pytest.raises(ModelFolderError, match="already installed"):
        prepare_model(PrepareRequest("copy", ("F16",), local_path=SRC), models)
    freed = models.remove("copy")
    assert freed > 0 and models.list() == []
    with pytest.raises(ModelFolderError, match="No installed model"):
        models.remove("copy")
    with pytest.raises(ModelFolderError, match="No installed model"):
        models.remove("..")  # never a path out of the models folder
    assert (tmp_path / "models").is_dir()


def test_a_damaged_folder_is_reported_not_listed(tmp_path: Path) -> None:
    broken = tmp_path / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json")
    models = InstalledModels(tmp_path / "models")
    assert models.list() == []
    assert "damaged" in models.problems()[0]


def test_models_cli_import_list_remove(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    def palidesk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli.main", "models", *args,
                               "--models-dir", str(tmp_path / "models")],
                              capture_output=True, text=True, timeout=300,
                              cwd=Path(__file__).resolve().parent.parent)

    done = palidesk("import", str(SRC), "--name", "tiny", "--quant", "q8_0")
    assert done.returncode == 0, done.stderr
    listing = json.loads(palidesk("list", "--json").stdout)
    assert [(m["name"], m["types"]) for m in listing["models"]] == [("tiny", ["F16", "Q8_0"])]
    assert listing["disk_use_bytes"] > 0
    done = palidesk("remove", "tiny")
    assert done.returncode == 0 and "freed" in done.stderr
    assert json.loads(palidesk("list", "--json").stdout)["models"] == []
    done = palidesk("remove", "tiny")
    assert done.returncode == 1 and "No installed model or unfinished download" in done.stderr


def test_quantize_with_a_cancel_flag_runs_in_a_child_and_stops_at_once(tmp_path: Path) -> None:
    from app.convert.converter import convert_checkpoint
    from app.models.quantize import quantize_folder

    out = tmp_path / "m"
    convert_checkpoint(SRC, out, "f16")
    seen: list[ProgressEvent] = []
    target = quantize_folder(out, "Q4_K_M", progress=seen.append, cancel=CancelFlag())
    assert target.exists() and seen and seen[-1].done == seen[-1].total
    cancel = CancelFlag()
    with pytest.raises(Cancelled):
        quantize_folder(out, "Q8_0", progress=lambda _e: cancel.cancel(), cancel=cancel)
    assert not (out / "text-q8_0.gguf").exists()
    assert not list(out.glob("*.partial"))


def test_downloaded_and_imported_models_carry_their_real_name(tmp_path: Path) -> None:
    """Issue 8 item 9: every downloaded model used to be called "checkpoint" (the work
    folder's name), so the window showed that, a mix model was not told from a pretrained
    one, and two downloads looked alike to history."""
    from app.model_files.gguf_header import read_gguf_header
    from app.model_files.hf_cache import hub_cache_dir
    from app.ui.engine_worker import checkpoint_kind

    models = InstalledModels(tmp_path / "models")

    def downloader(repo_id, dest, *, cache_dir, **_kwargs) -> Path:
        # Into the work folder (``dest``), or like the cache lays out a snapshot.
        target = dest if dest is not None else (
            (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))
            / "snapshots" / "0123456789abcdef0123456789abcdef01234567")
        shutil.copytree(SRC, target, dirs_exist_ok=True)
        return target

    names = {"mix": "someone/pg2-tiny-mix-224", "pt": "other/pg2-tiny-pt-224"}
    for kind, repo in names.items():
        for use_cache in (True, False):
            name = f"{kind}-{use_cache}"
            folder = prepare_model(PrepareRequest(name, ("F16",), repo_id=repo,
                                                  use_hf_cache=use_cache),
                                   models, downloader=downloader)
            installed = models.get(name)
            assert installed is not None and installed.manifest.source["name"] == repo
            assert checkpoint_kind(installed.manifest.source["name"]) == kind
            header = read_gguf_header(folder / "text-f16.gguf")
            assert header.get("palidesk.source") == repo
    # Imported: a cache snapshot is named after its repository, a plain folder after itself.
    snapshot = downloader("someone/pg2-tiny-mix-448", None, cache_dir=None)
    prepare_model(PrepareRequest("from-cache", ("F16",), local_path=snapshot), models)
    prepare_model(PrepareRequest("plain", ("F16",), local_path=SRC), models)
    assert models.get("from-cache").manifest.source["name"] == "someone/pg2-tiny-mix-448"
    assert models.get("plain").manifest.source["name"] == "pg2-tiny-224"


def test_pull_honours_the_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10 item 17: ``models pull NAME --revision R`` used to ignore R."""
    from fake_hub import FakeHub

    from app.cli.main import main

    hub = FakeHub.from_folder(SRC, repo_id="someone/pg2-tiny-224").start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code = main(["models", "pull", "someone/pg2-tiny-224", "--revision", "v9",
                     "--models-dir", str(tmp_path / "models")])
        assert code == 1
        assert "someone/pg2-tiny-224 has no revision called 'v9'" in capsys.readouterr().err
        assert not hub.gets_of("model.safetensors")
        assert not (tmp_path / "models" / "pg2-tiny-224.partial").exists()  # no leftover
        hub.publish(dict(hub.files), "c0ffee" * 6 + "c0ff", ref="v9")
        assert main(["models", "pull", "someone/pg2-tiny-224", "--revision", "v9",
                     "--quant", "F16", "--models-dir", str(tmp_path / "models")]) == 0
        assert all("/resolve/" + "c0ffee" in r.path
                   for r in hub.requests if "/resolve/" in r.path)
    finally:
        hub.stop()
