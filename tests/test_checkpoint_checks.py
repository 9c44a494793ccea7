"""A checkpoint must be the model it claims to be (issue 10 item 19): a config.json that
contradicts its weights is refused, a checkpoint served under a catalog name must have
that entry's shapes, and any repository of a PaliGemma 2 checkpoint can be pulled, sized
from its own config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fake_hub import FakeHub

from app.convert.converter import convert_checkpoint
from app.errors import CatalogError, ConversionError
from app.models import catalog
from app.models.catalog import VariantDims, dims_from_config, entry_for_repo
from app.models.disk_space import DISK_MARGIN_BYTES, gguf_bytes, required_disk_bytes
from app.models.download import download_checkpoint, plan_download
from app.models.installed import InstalledModels
from app.models.prepare import PrepareRequest, prepare_model
from conftest import TINY

SRC = TINY / "pg2-tiny-224"
TINY_DIMS = VariantDims(64, 128, 4, 2, 1, 32, image_size=224, vocab_rows=1920,
                        vision_hidden=32, vision_intermediate=64, vision_layers=2,
                        vision_heads=2)
# google/paligemma2-3b-pt-448's config.json as published (transformers 4.47 era): it
# states the main sizes and leaves head_dim and the vision image size to the defaults.
REAL_3B_448_CONFIG = {
    "architectures": ["PaliGemmaForConditionalGeneration"], "model_type": "paligemma",
    "hidden_size": 2048, "image_token_index": 257152, "projection_dim": 2304,
    "text_config": {"hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304,
                    "intermediate_size": 9216, "model_type": "gemma2",
                    "num_attention_heads": 8, "num_hidden_layers": 26,
                    "num_image_tokens": 1024, "num_key_value_heads": 4,
                    "query_pre_attn_scalar": 256, "sliding_window": 4096,
                    "vocab_size": 257216},
    "vision_config": {"hidden_size": 1152, "intermediate_size": 4304,
                      "model_type": "siglip_vision_model", "num_attention_heads": 16,
                      "num_hidden_layers": 27, "num_image_tokens": 1024, "patch_size": 14,
                      "projection_dim": 2304, "vision_use_head": False},
}


@pytest.fixture(autouse=True)
def hub_environment(private_hub: Path) -> None:
    """Every test here sees a private HF_HOME (conftest.py)."""


def edited_copy(tmp_path: Path, edit) -> Path:
    """The tiny checkpoint with its config.json changed by ``edit(config)``."""
    folder = tmp_path / "edited"
    shutil.copytree(SRC, folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(("section", "key", "value", "words"), [
    ("text_config", "intermediate_size", 256, "text intermediate size 256 in config.json, "
                                              "128 in the weights"),
    ("text_config", "num_hidden_layers", 6, "text layer count 6 in config.json, 4 in"),
    ("vision_config", "image_size", 448, "image size 448 in config.json, 224 in"),
    ("text_config", "hidden_size", 2304, "text hidden size 2304"),
])
def test_a_config_contradicting_its_weights_is_refused(
    tmp_path: Path, section: str, key: str, value: int, words: str
) -> None:
    folder = edited_copy(tmp_path, lambda c: c[section].__setitem__(key, value))
    with pytest.raises(ConversionError) as error:
        convert_checkpoint(folder, tmp_path / "out")
    message = str(error.value)
    assert "config.json contradicts its weights" in message and words in message
    assert not (tmp_path / "out" / "text-f16.gguf").exists()


def test_a_config_leaving_sizes_out_is_fine(tmp_path: Path) -> None:
    def drop(config: dict) -> None:
        for key in ("intermediate_size", "num_hidden_layers", "head_dim"):
            config["text_config"].pop(key)
        config["vision_config"].pop("image_size")

    manifest = convert_checkpoint(edited_copy(tmp_path, drop), tmp_path / "out")
    assert manifest.image_size == 224 and manifest.text["layers"] == 4


def test_config_sizes_read_like_the_catalog_computes_them(tmp_path: Path) -> None:
    assert dims_from_config(json.loads((SRC / "config.json").read_text()), "x/y") == TINY_DIMS
    entry = catalog.find("paligemma2-3b-pt-448")
    assert dims_from_config(REAL_3B_448_CONFIG, entry.repo_id) == entry.dims
    catalog.check_catalog_shapes(entry.repo_id, entry.dims, "its config.json")  # no error
    with pytest.raises(CatalogError, match="is not a PaliGemma checkpoint"):
        dims_from_config({"model_type": "llama"}, "meta/llama")
    with pytest.raises(CatalogError, match="'gemma' decoder"):
        dims_from_config({"model_type": "paligemma", "text_config": {"model_type": "gemma"},
                          "vision_config": {}}, "google/paligemma-3b-pt-224")
    assert entry_for_repo("google/PaliGemma2-3b-pt-448") is entry
    assert entry_for_repo("someone/paligemma2-3b-pt-448") is None


def test_a_tiny_model_served_under_a_catalog_name_is_refused_before_the_weights() -> None:
    """A mirror serving a tiny model as google/paligemma2-3b-pt-224 used to get it
    installed under that name."""
    repo = "google/paligemma2-3b-pt-224"
    with FakeHub.from_folder(SRC, repo_id=repo) as hub:
        with pytest.raises(CatalogError) as error:
            download_checkpoint(repo, endpoint=hub.url)
        assert not hub.gets_of("model.safetensors")
    message = str(error.value)
    assert message.startswith(f"{repo} should be PaliGemma 2 3B at 224 px, but its "
                              "config.json describes another model")
    assert "text hidden size 2304 expected, 64 found" in message


def test_weights_that_are_not_the_catalog_model_are_refused_whatever_the_config_says(
    tmp_path: Path,
) -> None:
    """The config can leave the sizes out (the defaults are the 3B's) or state the 3B's
    sizes; the tensors are what gets installed, and they are checked either way."""
    def say_nothing(config: dict) -> None:
        for section in ("text_config", "vision_config"):
            config[section] = {k: v for k, v in config[section].items()
                               if not k.endswith(("_size", "_layers", "_heads", "head_dim",
                                                  "num_image_tokens"))}

    def claim_3b(config: dict) -> None:
        config["text_config"].update(REAL_3B_448_CONFIG["text_config"], num_image_tokens=256)

    models = InstalledModels(tmp_path / "models")
    silent = edited_copy(tmp_path, say_nothing)
    dims = dims_from_config(json.loads((silent / "config.json").read_text()), "x")
    assert dims == catalog.find("paligemma2-3b-pt-224").dims  # the config alone passes
    with pytest.raises(CatalogError, match="but its weights describes another model"):
        prepare_model(PrepareRequest("paligemma2-3b-pt-224", ("F16",),
                                     repo_id="google/paligemma2-3b-pt-224"),
                      models, downloader=lambda *_a, **_k: silent)
    shutil.rmtree(silent)
    lying = edited_copy(tmp_path, claim_3b)
    with pytest.raises(ConversionError, match=r"config\.json contradicts its weights"):
        prepare_model(PrepareRequest("paligemma2-3b-pt-224", ("F16",),
                                     repo_id="google/paligemma2-3b-pt-224"),
                      models, downloader=lambda *_a, **_k: lying)
    assert models.list() == [] and models.leftovers() == []


def test_any_repository_is_pulled_and_sized_from_its_own_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    repo = "someone/pg2-tiny-finetune"
    with FakeHub.from_folder(SRC, repo_id=repo) as hub:
        plan = plan_download(repo, endpoint=hub.url)
        # Sized from the config's shapes, not from a ratio of the weights' size.
        assert required_disk_bytes(plan, ["Q8_0"], dims=TINY_DIMS) == (
            plan.total_bytes + DISK_MARGIN_BYTES + gguf_bytes(TINY_DIMS, ["Q8_0"]))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["models", "pull", repo, "--quant", "F16",
                     "--models-dir", str(tmp_path / "models")]) == 0
    installed = InstalledModels(tmp_path / "models").get("pg2-tiny-finetune")
    assert installed is not None and installed.manifest.source["name"] == repo
    assert "installed pg2-tiny-finetune" in capsys.readouterr().err


def test_a_repository_that_is_not_paligemma_2_is_refused_before_the_weights(
    tmp_path: Path,
) -> None:
    files = {p.name: p.read_bytes() for p in SRC.iterdir()}
    config = json.loads(files["config.json"])
    config["model_type"] = "llava"
    files["config.json"] = json.dumps(config).encode()
    with FakeHub(files, "someone/llava-tiny") as hub:
        with pytest.raises(CatalogError, match="is not a PaliGemma checkpoint"):
            download_checkpoint("someone/llava-tiny", endpoint=hub.url)
        assert not hub.gets_of("model.safetensors")
