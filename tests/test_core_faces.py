"""Every command takes ``--model NAME|DIR`` through the one resolver: an installed model's
name works for run, batch and eval alike, and a wrong one gets the same sentence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IMAGES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def installed(converted, tmp_path: Path) -> dict[str, str]:
    """An environment whose Settings name a models folder holding "tiny"."""
    from app.settings import Settings, SettingsStore

    models = tmp_path / "models"
    shutil.copytree(converted("pg2-tiny-224"), models / "tiny")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    config = tmp_path / "config" / "PaliDesk" / "settings.json"
    SettingsStore(config).save(Settings(models_dir=str(models)))
    return env


def palidesk(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


def test_eval_run_and_batch_take_an_installed_name(installed, tmp_path: Path) -> None:
    image = IMAGES / "noise_97x150.png"
    caption = ("--task", "caption", "--max-tokens", "4")
    ran = palidesk(installed, "run", "--model", "tiny", "--quant", "F16", *caption, "--json",
                   image)
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "r.jsonl"
    batch = palidesk(installed, "batch", image, "--model", "tiny", "--quant", "F16",
                     *caption, "--out", out)
    assert batch.returncode == 0, batch.stderr
    record = json.loads(out.read_text().splitlines()[0])
    assert record["tokens"] == json.loads(ran.stdout)["tokens"]
    evaluated = palidesk(installed, "eval", "--model", "tiny", "--quant", "F16", "--task",
                         "caption", "--images", IMAGES, "--limit", "1", "--max-tokens", "4",
                         "--out", tmp_path / "eval")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["model"] == "tiny" and report["quants"]["F16"]["images_done"] == 1
    for command in (("run", *caption, image), ("batch", image, *caption, "--out", out),
                    ("eval", "--task", "caption", "--images", IMAGES, "--out", out.parent)):
        wrong = palidesk(installed, command[0], "--model", "nope", *command[1:])
        assert wrong.returncode == 1 and "Traceback" not in wrong.stderr, command
        assert "'nope' is neither a model folder nor the name of an installed model. " \
               "Installed models: tiny." in wrong.stderr, command
