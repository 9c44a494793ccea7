"""The batch's pieces without a model: input listing, the results file, --model NAME."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.batch.inputs import iter_image_paths
from app.batch.record_keys import ResultsFileError
from app.batch.results_log import ResultsLog
from app.errors import ModelFolderError
from app.session.model_resolver import resolve_model


def record(image: str, sha: str = "ab" * 32) -> dict:
    return {"image": image, "image_sha256": sha, "prompt": "caption en", "model_id": "m1",
            "quantization": "Q4_K_M", "text": "a cat"}


def test_folders_are_walked_in_order_one_path_at_a_time(tmp_path: Path) -> None:
    for name in ("b/2.png", "b/1.JPG", "a/z.webp", "a/.hidden/x.png", "c.txt", ".d.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    paths = iter_image_paths([str(tmp_path)])
    assert next(paths) == str(tmp_path / "a" / "z.webp")  # lazily: nothing listed up front
    assert list(paths) == [str(tmp_path / "b" / "1.JPG"), str(tmp_path / "b" / "2.png")]


def test_a_second_writer_of_one_results_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with ResultsLog(out, resume=False) as log:
        log.append(record("/x/a.png"))
        with pytest.raises(ResultsFileError, match="Another palidesk batch"):
            ResultsLog(out, resume=True)
    with ResultsLog(out, resume=True) as again:  # free once the first one closed
        assert again.resumed_records == 1


def test_identical_bytes_share_a_content_key_and_the_first_record_is_found(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultsLog(out, resume=False) as log:
        log.append(record("/x/a.png"))
        log.append(record("/x/b.png", sha="cd" * 32))
    with ResultsLog(out, resume=True) as log:
        from app.batch.record_keys import keys_of

        content, entry = keys_of(record("/y/copy.png"))
        assert log.has_content(content) and not log.has_entry(entry)
        assert log.first_record(content)["image"] == "/x/a.png"
        assert log.has_entry(keys_of(record("/x/b.png", sha="cd" * 32))[1])


def test_model_can_be_named_by_its_installed_name(converted, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(converted("pg2-tiny-224"), models / "tiny-mix")
    assert resolve_model("tiny-mix", models_dir=models) == models / "tiny-mix"
    with pytest.raises(ModelFolderError, match="Installed models: tiny-mix"):
        resolve_model("other", models_dir=models)
