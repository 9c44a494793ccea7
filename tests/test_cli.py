"""The command line end to end: convert -> quantize -> info -> run (JSON contract)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IMAGES, TINY


def palidesk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *map(str, args)],
        capture_output=True, text=True, timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "tiny"
    done = palidesk("convert", TINY / "pg2-tiny-224", "--out", out, "--outtype", "f16")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # progress and file names go to stderr
    done = palidesk("quantize", out, "--type", "q4_k_m")
    assert done.returncode == 0, done.stderr
    return out


def test_info_lists_the_files(model_dir: Path) -> None:
    done = palidesk("info", model_dir)
    assert done.returncode == 0, done.stderr
    for name in ("text-f16.gguf", "mmproj-f16.gguf", "text-q4_k_m.gguf", "Q4_K_M", "224 px"):
        assert name in done.stdout
    assert "ready:        yes" in done.stdout


def test_run_json_is_one_object_per_image(model_dir: Path) -> None:
    images = [IMAGES / "shapes_320x240.png", IMAGES / "noise_97x150.png"]
    done = palidesk("run", "--model", model_dir, "--quant", "F16", "--task", "detect",
                    "--classes", "cat;dog", "--max-tokens", "20", "--json", *images)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line, image in zip(lines, images, strict=True):
        record = json.loads(line)
        assert record["image"] == str(image)
        assert record["prompt"] == "detect cat ; dog"
        assert isinstance(record["tokens"], list) and 0 < len(record["tokens"]) <= 20
        assert isinstance(record["text"], str)
        assert isinstance(record["objects"], list)
        assert {"image_encode_s", "prefill_s", "first_token_s",
                "decode_tokens_per_s"} <= set(record["timings"])


def test_run_reproduces_the_reference_tokens(model_dir: Path, reference: dict) -> None:
    """Converter + runtime parity, through the CLI (F16, greedy, 20 steps)."""
    case = next(c for c in reference["cases"] if c["model"] == "pg2-tiny-224")
    done = palidesk("run", "--model", model_dir, "--quant", "f16", "--task", "custom",
                    "--prompt", case["prompt"], "--max-tokens", "20", "--json",
                    IMAGES / case["image"])
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["prompt"] == case["prompt"]
    assert record["tokens"] == case["generated_ids"][:20]


def test_run_custom_prompt_is_sent_verbatim_and_quant_is_case_insensitive(
        model_dir: Path) -> None:
    done = palidesk("run", "--model", model_dir, "--quant", "q4_K_m", "--task", "custom",
                    "--prompt", "describe  en", "--max-tokens", "4", "--json",
                    IMAGES / "shapes_320x240.png")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["prompt"] == "describe  en"


def test_run_streams_text_to_the_terminal(model_dir: Path) -> None:
    done = palidesk("run", "--model", model_dir, "--task", "caption", "--max-tokens", "6",
                    IMAGES / "shapes_320x240.png")
    assert done.returncode == 0, done.stderr
    assert "tokens/s" in done.stderr and "model: tiny (F16)" in done.stderr


def test_errors_are_plain_sentences(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    done = palidesk("run", "--model", model_dir, "--task", "caption", "--json", bad,
                    IMAGES / "shapes_320x240.png")
    assert done.returncode == 1
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert "not an image" in first["error"]
    assert second["tokens"]  # the good image still ran: nothing is lost
    done = palidesk("run", "--model", model_dir, "--quant", "Q6_K", "--task", "caption",
                    IMAGES / "shapes_320x240.png")
    assert done.returncode == 1 and "no Q6_K text file" in done.stderr
    assert "Traceback" not in done.stderr
    done = palidesk("run", "--model", model_dir, "--task", "ask", IMAGES / "shapes_320x240.png")
    assert done.returncode == 1 and "question" in done.stderr.lower()
    done = palidesk("convert", tmp_path, "--out", tmp_path / "o")
    assert done.returncode == 1 and "config.json" in done.stderr
