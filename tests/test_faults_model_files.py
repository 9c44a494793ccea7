"""Fault injection against model files: damaged GGUF headers, manifests, checkpoint
configs and safetensors, and model files changed after they were written (issue 10)."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from app.convert.checkpoint import open_checkpoint
from app.convert.safetensors_reader import read_header
from app.engine.engine import Engine
from app.errors import ConversionError, ModelFolderError
from app.model_files.gguf_header import read_gguf_header
from app.model_files.manifest import read_manifest
from app.model_files.model_folder import ModelFolder
from app.model_files.verification import STAMP_NAME
from conftest import TINY

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def copy(tiny_f16: Path, tmp_path: Path) -> Path:
    """A private copy of the model folder (times kept, so its verified stamps hold)."""
    target = tmp_path / "model"
    shutil.copytree(tiny_f16, target)
    return target


def palidesk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


# --- GGUF headers -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_gguf_with_a_valid_start_and_random_rest_is_damaged_not_a_crash(
    copy: Path, seed: int
) -> None:
    path = copy / "text-f16.gguf"
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    data[24:] = rng.randbytes(len(data) - 24)  # magic, version and counts stay valid
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="truncated"):
        read_gguf_header(path)


def test_gguf_string_length_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.gguf"
    # magic, version 3, 0 tensors, 1 key whose name claims to be 2^62 bytes long
    path.write_bytes(b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1 << 62) + b"x" * 64)
    with pytest.raises(ModelFolderError, match="length field"):
        read_gguf_header(path)


def test_info_and_run_report_a_damaged_gguf_in_words(copy: Path) -> None:
    path = copy / "text-f16.gguf"
    data = bytearray(path.read_bytes())
    data[24:] = random.Random(1).randbytes(len(data) - 24)
    path.write_bytes(bytes(data))
    for args in (("info", copy), ("run", "--model", copy, "--task", "caption",
                                  TINY.parent / "images" / "shapes_320x240.png")):
        done = palidesk(*args)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
        assert "text-f16.gguf" in done.stdout + done.stderr


# --- manifests ------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["null", "[]", '"text"', "{}", '{"files": 3}',
                                     '{"source": {}, "text": {}, "vision": {}, '
                                     '"image_size": 224, "image_tokens": 256, '
                                     '"files": [{"name": "../x"}]}'])
def test_a_manifest_that_is_not_one_is_damaged(copy: Path, content: str) -> None:
    (copy / "manifest.json").write_text(content)
    with pytest.raises(ModelFolderError, match="is damaged"):
        read_manifest(copy)
    done = palidesk("info", copy)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "manifest.json is damaged" in done.stderr


# --- checkpoints ------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    target = tmp_path / "checkpoint"
    shutil.copytree(TINY / "pg2-tiny-224", target)
    return target


@pytest.mark.parametrize("content", ["[]", "null", '{"model_type": "paligemma", '
                                                   '"text_config": []}'])
def test_a_config_that_is_not_a_table_is_refused(checkpoint: Path, content: str) -> None:
    (checkpoint / "config.json").write_text(content)
    with pytest.raises(ConversionError, match="not a Hugging Face model configuration"):
        open_checkpoint(checkpoint)


def _rewrite_header(path: Path, change) -> None:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])


def _first_tensor(header: dict) -> str:
    return next(name for name in header if name != "__metadata__")


def test_a_safetensors_entry_without_offsets_is_refused(checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"
    _rewrite_header(weights, lambda h: h[_first_tensor(h)].pop("data_offsets"))
    with pytest.raises(ConversionError, match="damaged"):
        read_header(weights)


def test_a_tensor_six_bytes_short_is_refused_before_reading(checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"

    def shorten(header: dict) -> None:
        entry = header[_first_tensor(header)]
        entry["data_offsets"][1] -= 6

    _rewrite_header(weights, shorten)
    with pytest.raises(ConversionError, match="should hold"):
        read_header(weights)
    done = palidesk("convert", checkpoint, "--out", checkpoint.parent / "out")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "BufferError" not in done.stderr


# --- files changed after they were written --------------------------------------------------


def _scramble_tail(path: Path, fraction: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * (1 - fraction))
    data[start:] = random.Random(7).randbytes(len(data) - start)
    path.write_bytes(bytes(data))  # same size, new modification time


def test_random_bytes_over_the_weights_are_caught_before_loading(copy: Path) -> None:
    _scramble_tail(copy / "text-f16.gguf")
    pair = ModelFolder(copy).resolve()  # sizes match: cheap checks pass
    engine = Engine()
    with pytest.raises(ModelFolderError, match="does not match the checksum"):
        engine.load(pair)
    assert not engine.loaded


def test_info_verify_hashes_every_file(copy: Path) -> None:
    done = palidesk("info", "--verify", copy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("checksum ok") == 2
    os.remove(copy / STAMP_NAME)  # even with no stamp to lean on
    _scramble_tail(copy / "mmproj-f16.gguf")
    done = palidesk("info", "--verify", copy)
    assert done.returncode == 1
    assert "DAMAGED" in done.stdout and "mmproj-f16.gguf" in done.stdout
    assert "ready:        no" in done.stdout


def test_a_file_of_another_size_is_refused_without_hashing(copy: Path) -> None:
    with (copy / "text-f16.gguf").open("ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(ModelFolderError, match="was written as"):
        ModelFolder(copy).resolve()


def test_an_unchanged_file_is_not_hashed_again(copy: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from app.model_files import verification

    hashed: list[Path] = []
    real = verification.file_sha256
    monkeypatch.setattr(verification, "file_sha256", lambda p: hashed.append(p) or real(p))
    pair = ModelFolder(copy).resolve()
    verification.verify_files(copy, (pair.text.path.name, pair.vision.path.name))
    assert hashed == []  # the stamps written at conversion still hold
    (copy / "text-f16.gguf").touch()  # e.g. copied without its times
    verification.verify_files(copy, (pair.text.path.name, pair.vision.path.name))
    assert [p.name for p in hashed] == ["text-f16.gguf"]
    verification.verify_files(copy, (pair.text.path.name, pair.vision.path.name))
    assert len(hashed) == 1  # stamped again after the hash matched
