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

    def downloader(repo_id, dest, *, progress, cancel, token, endpoint, quant_types) -> Path:
        calls.append(repo_id)
        if not dest.exists():
            shutil.copytree(SRC, dest)
        return dest

    request = PrepareRequest("tiny", ("Q4_K_M",), repo_id="google/tiny")
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
    assert done.returncode == 1 and "No installed model" in done.stderr


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
