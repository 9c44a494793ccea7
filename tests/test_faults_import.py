"""``models import`` and ``masks import`` against hostile names and damaged files
(issue 18): refused before anything is copied, nothing installed where it was not asked."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mask_weights import random_decoder_weights, write_random_decoder

from conftest import TINY

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = TINY / "pg2-tiny-224"


def palidesk(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- models import -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", ".", ".hidden",
                                  "mine.partial", "a\\b"])
def test_import_name_must_be_one_plain_component(tmp_path: Path, name: str) -> None:
    models = tmp_path / "deep" / "er" / "models"
    done = palidesk("models", "import", CHECKPOINT, "--name", name, "--models-dir", models)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"The model name {name!r}" in done.stderr
    # Nothing made: not in the models folder, not beside it, not two levels up.
    assert not models.exists()
    assert _everything_under(tmp_path) == ["deep", "deep/er"] or \
        _everything_under(tmp_path) == []


def test_pull_name_is_checked_the_same_way(tmp_path: Path) -> None:
    done = palidesk("models", "pull", "paligemma2-3b-pt-224", "--name", "../x",
                    "--models-dir", tmp_path / "models", timeout=60)
    assert done.returncode == 1
    assert "The model name '../x' is not a plain name" in done.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "x").exists()


def test_unknown_quantization_is_refused_before_copying(tmp_path: Path) -> None:
    models = tmp_path / "models"
    done = palidesk("models", "import", CHECKPOINT, "--name", "mine", "--quant", "Q9_X",
                    "--models-dir", models)
    assert done.returncode == 1
    assert "Unknown quantization 'Q9_X' in --quant" in done.stderr
    assert not (models / "mine.partial").exists()  # nothing converted or copied first
    assert not models.exists() or _everything_under(models) == []


def test_unknown_quantization_is_refused_before_a_pull_downloads(tmp_path: Path) -> None:
    done = palidesk("models", "pull", "paligemma2-3b-pt-224", "--quant", "Q4_K_M,q9_x",
                    "--models-dir", tmp_path / "models", timeout=60)
    assert done.returncode == 1
    assert "Unknown quantization 'Q9_X' in --quant" in done.stderr
    assert not (tmp_path / "models").exists()


def test_truncated_model_file_is_not_imported(converted, tmp_path: Path) -> None:
    source = tmp_path / "tiny"
    shutil.copytree(converted("pg2-tiny-224"), source)
    manifest = json.loads((source / "manifest.json").read_text())
    text = next(f["name"] for f in manifest["files"] if f["role"] == "text")
    with open(source / text, "r+b") as file:
        file.truncate(os.path.getsize(source / text) // 2)
    models = tmp_path / "models"
    done = palidesk("models", "import", source, "--name", "mine", "--quant", "F16",
                    "--models-dir", models)
    assert done.returncode == 1
    assert f"Not imported: {text} is" in done.stderr and "damaged" in done.stderr
    assert not (models / "mine").exists() and not (models / "mine.partial").exists()
    assert sorted(p.name for p in source.iterdir()) == sorted(
        p.name for p in converted("pg2-tiny-224").iterdir())  # nothing written into it


def test_altered_model_file_of_the_same_size_is_not_imported(converted,
                                                             tmp_path: Path) -> None:
    source = tmp_path / "tiny"
    shutil.copytree(converted("pg2-tiny-224"), source)
    manifest = json.loads((source / "manifest.json").read_text())
    vision = next(f["name"] for f in manifest["files"] if f["role"] == "vision")
    with open(source / vision, "r+b") as file:
        file.seek(-16, os.SEEK_END)
        file.write(b"\xff" * 16)
    done = palidesk("models", "import", source, "--name", "mine", "--quant", "F16",
                    "--models-dir", tmp_path / "models")
    assert done.returncode == 1
    assert f"Not imported: {vision} in {source} is damaged" in done.stderr


def test_a_folder_missing_a_listed_quantization_still_imports(converted,
                                                             tmp_path: Path) -> None:
    source = tmp_path / "tiny"
    shutil.copytree(converted("pg2-tiny-224"), source)
    manifest = json.loads((source / "manifest.json").read_text())
    texts = [f["name"] for f in manifest["files"] if f["role"] == "text"]
    assert len(texts) > 1
    kept = next(name for name in texts if "f16" in name)
    for name in texts:
        if name != kept:
            (source / name).unlink()  # deleted by the user to save space
    done = palidesk("models", "import", source, "--name", "mine", "--quant", "F16",
                    "--models-dir", tmp_path / "models")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "mine" / kept).exists()


def test_a_file_given_to_models_import_is_not_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "model.gguf"
    file.write_bytes(b"GGUF")
    done = palidesk("models", "import", file, "--models-dir", tmp_path / "models")
    assert done.returncode == 1
    assert f"{file} is not a folder" in done.stderr


# --- masks import ------------------------------------------------------------------------


def test_empty_codebook_is_refused(tmp_path: Path) -> None:
    from app.tasks.masks import EMBEDDING_KEY, _conv_shapes

    bad = tmp_path / "vae-oid.npz"  # a 128 x 0 codebook; every shape the rules ask for
    np.savez(bad, **{EMBEDDING_KEY: np.zeros((128, 0), np.float32)},
             **{key: np.zeros(shape, np.float32) for key, shape in _conv_shapes(0).items()})
    done = palidesk("masks", "import", bad, "--models-dir", tmp_path / "models", timeout=60)
    assert done.returncode == 1
    assert "is not a usable mask decoder" in done.stderr and "holds no numbers" in done.stderr
    assert "installed" not in done.stderr
    assert not (tmp_path / "models" / "mask-decoder" / "vae-oid.npz").exists()


def test_npy_renamed_npz_is_a_sentence(tmp_path: Path) -> None:
    weights = random_decoder_weights()
    renamed = tmp_path / "vae-oid.npz"
    with open(renamed, "wb") as file:
        np.save(file, next(iter(weights.values())))
    done = palidesk("masks", "import", renamed, "--models-dir", tmp_path / "models",
                    timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "TypeError" not in done.stderr
    assert "it is not a readable .npz file (an .npy array or another file renamed?)" in done.stderr


def test_npy_renamed_npz_is_refused_for_run_too(tmp_path: Path) -> None:
    from app.errors import MaskDecoderError
    from app.tasks.masks import read_decoder_weights

    renamed = tmp_path / "vae-oid.npz"
    with open(renamed, "wb") as file:
        np.save(file, np.zeros((128, 4), np.float32))
    with pytest.raises(MaskDecoderError, match=r"not a readable \.npz file"):
        read_decoder_weights(renamed)


def test_failed_import_says_import_not_download(tmp_path: Path) -> None:
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")
    done = palidesk("masks", "import", write_random_decoder(tmp_path / "mine.npz"),
                    "--models-dir", blocker, timeout=60)
    assert done.returncode == 1
    assert "could not import mine.npz into" in done.stderr
    assert "download" not in done.stderr
    assert f"{blocker} is a file, not a folder" in done.stderr


def test_installed_decoder_is_readable_by_others(tmp_path: Path) -> None:
    from app.models.mask_decoder import import_decoder

    previous = os.umask(0o022)
    try:
        path = import_decoder(tmp_path / "models", write_random_decoder(tmp_path / "d.npz"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # was 0600 (mkstemp's)


# --- models remove -----------------------------------------------------------------------


def test_remove_deletes_only_models_not_other_folders(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "mask-decoder").mkdir(parents=True)
    decoder = write_random_decoder(models / "mask-decoder" / "vae-oid.npz")
    (models / "my-notes").mkdir()
    for name in ("mask-decoder", "my-notes"):
        done = palidesk("models", "remove", name, "--models-dir", models, timeout=60)
        assert done.returncode == 1
        assert f"{name!r} is not an installed model ({models / name} has no " \
               "manifest.json)" in done.stderr
    assert decoder.exists() and (models / "my-notes").is_dir()


def test_remove_still_deletes_a_model_whose_manifest_is_damaged(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "manifest.json").write_text("{not json")
    done = palidesk("models", "remove", "broken", "--models-dir", models, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (models / "broken").exists()
