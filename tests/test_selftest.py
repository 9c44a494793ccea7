"""``palidesk --self-test`` from source, its failure reports, the build record it prints,
and the packaging helpers it relies on (resources, the PyInstaller hooks)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import build_info
from app.build_info import BuildInfo, read_build_info, variant_of
from app.resources import resource_path

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_LINES = ("python:", "build:", "llama-cpp-python:", "llama.cpp system:",
                  "GPU offload:", "hardware:", "Qt:", "window:", "model:", "caption:",
                  "result:")


def _self_test(**env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **env}
    return subprocess.run([sys.executable, "-m", "app.cli.main", "--self-test"], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=300)


def test_self_test_passes_from_source():
    run = _self_test()
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("PaliDesk ") and lines[0].endswith("self-test")
    for label in EXPECTED_LINES:
        assert any(line.startswith(label) for line in lines), f"no {label!r} line"
    assert "platform offscreen" in run.stdout
    assert "pg2-tiny-224 · F16" in run.stdout
    assert lines[-1].startswith("self-test passed")


def test_a_missing_model_fails_with_the_reason(tmp_path: Path):
    run = _self_test(PALIDESK_SELFTEST_MODEL=str(tmp_path / "nowhere"))
    assert run.returncode == 1
    last = run.stdout.splitlines()[-1]
    assert last.startswith("self-test FAILED: the built-in model is missing")
    assert str(tmp_path / "nowhere") in last


def test_a_model_that_does_not_load_fails_in_the_window(tmp_path: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_bytes(
        (ROOT / "resources" / "selftest-model" / "manifest.json").read_bytes())
    run = _self_test(PALIDESK_SELFTEST_MODEL=str(broken))
    assert run.returncode == 1
    assert "window:" in run.stdout  # it got as far as opening the window
    assert run.stdout.splitlines()[-1].startswith("self-test FAILED: the model did not load")


def test_the_builtin_resources_exist_and_leak_no_local_path():
    model = resource_path("selftest-model")
    assert resource_path("verify-image.png").is_file()
    for px in (48, 128, 256):
        assert resource_path("icons", f"palidesk-{px}.png").is_file()
    manifest = json.loads((model / "manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} == {"text-f16.gguf", "mmproj-f16.gguf"}
    assert not Path(manifest["source"]["path"]).is_absolute()
    assert sum(p.stat().st_size for p in model.iterdir()) < 1_500_000


def test_resource_path_follows_the_frozen_bundle(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_path("verify-image.png") == tmp_path / "resources" / "verify-image.png"


@pytest.mark.parametrize(("args", "named", "variant"), [
    (["-DGGML_CUDA=on"], "custom", "cuda"),
    (["-DGGML_NATIVE=OFF", "-DGGML_METAL=ON"], "", "metal"),
    (["-DGGML_VULKAN=on"], "cpu", "vulkan"),
    (["-DGGML_AVX2=ON"], "avx512", "cpu"),
    ([], "default", "cpu"),
    ([], "cpu", "cpu"),
    (["-DFOO=1"], "custom", "custom"),
    ([], "", "unknown"),
])
def test_variant_names(args, named, variant):
    assert variant_of(args, named) == variant


def test_build_record_frozen_and_from_source(tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "palidesk-build.json").write_text(json.dumps(
        {"variant": "cuda", "cmake_args": ["-DGGML_CUDA=on"], "llama_cpp_python": "0.3.36"}))
    frozen = read_build_info(frozen_root=bundle)
    assert (frozen.variant, frozen.frozen, frozen.cmake_args) == ("cuda", True,
                                                                  ("-DGGML_CUDA=on",))
    assert "cuda build (frozen bundle)" in frozen.describe()
    venv = tmp_path / "venv"
    venv.mkdir()
    assert read_build_info(venv_dir=venv).variant == "unknown"
    (venv / "palidesk-llama-build.json").write_text(json.dumps(
        {"version": "0.3.36", "variant": "avx2", "cmake_args": ["-DGGML_AVX2=ON"]}))
    source = read_build_info(venv_dir=venv)
    assert (source.variant, source.frozen, source.llama_cpp_python) == ("cpu", False, "0.3.36")
    (venv / "palidesk-llama-build.json").write_text("[not a record")
    assert read_build_info(venv_dir=venv).variant == "unknown"


def test_frozen_cpu_build_on_an_nvidia_machine_points_at_the_cuda_installer(monkeypatch):
    from app import hardware

    class Report:
        advice = hardware.CPU_ONLY_BUILD_ADVICE

    monkeypatch.setattr(hardware, "detect", lambda: Report())
    frozen_cpu = BuildInfo("cpu", frozen=True)
    text = build_info.gpu_build_advice(frozen_cpu)
    assert "this PaliDesk is a CPU-only build (cpu)" in text
    assert "A CUDA build of PaliDesk exists" in text and "-cuda" in text
    # From source the hardware report's rebuild command is the right advice.
    assert build_info.gpu_build_advice(BuildInfo("cpu")) == hardware.CPU_ONLY_BUILD_ADVICE
    Report.advice = None
    assert build_info.gpu_build_advice(frozen_cpu) is None


def _load_hook(name: str):
    pytest.importorskip("PyInstaller")  # in the dev extra (and packaging/ci_check.sh)
    path = ROOT / "packaging" / "hooks" / f"hook-{name}.py"
    spec = importlib.util.spec_from_file_location(f"palidesk_hook_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_llama_hook_keeps_the_loaded_names_only(tmp_path: Path):
    hook = _load_hook("llama_cpp")
    names = ["libllama.so", "libllama.so.0", "libllama.so.0.5.0", "libggml.0.dylib",
             "libggml.dylib", "libggml.0.25.3.dylib", "ggml-cuda.dll", "libodd.so.1.2.3",
             "README.md"]
    for name in names:
        (tmp_path / name).write_text("x")
    kept = [p.name for p in hook.llama_libraries(tmp_path)]
    assert kept == ["ggml-cuda.dll", "libggml.0.dylib", "libggml.dylib", "libllama.so",
                    "libllama.so.0", "libodd.so.1.2.3"]
    assert all(dest == "llama_cpp/lib" for _, dest in hook.binaries)
    assert any(src.endswith("libllama.so") for src, _ in hook.binaries)


def test_llama_hook_keeps_every_cpu_variant_and_gpu_backend(tmp_path: Path):
    # A release build's backend modules: libggml opens them itself at run time, so a
    # missing one would silently cost speed (or, for the GPU one, the GPU).
    hook = _load_hook("llama_cpp")
    variants = ["x64", "sse42", "sandybridge", "ivybridge", "piledriver", "haswell",
                "skylakex", "cannonlake", "cascadelake", "icelake", "cooperlake", "zen4",
                "alderlake", "sapphirerapids", "armv8.2_1", "armv9.2_2"]
    names = [f"libggml-cpu-{v}.so" for v in variants] + [
        "libggml-cuda.so", "libggml-base.so", "libggml-base.so.0", "libggml-base.so.0.9.4",
        "ggml-cpu-haswell.dll", "libggml-cpu-zen4.dylib"]
    for name in names:
        (tmp_path / name).write_text("x")
    kept = {p.name for p in hook.llama_libraries(tmp_path)}
    assert {f"libggml-cpu-{v}.so" for v in variants} <= kept
    assert {"libggml-cuda.so", "ggml-cpu-haswell.dll", "libggml-cpu-zen4.dylib"} <= kept
    assert "libggml-base.so.0.9.4" not in kept


def test_qt_hook_drops_unused_plugins():
    hook = _load_hook("PySide6.QtGui")
    plugins = "PySide6/Qt/plugins"
    assert hook.wanted("/q/libqxcb.so", f"{plugins}/platforms")
    assert hook.wanted("C:/q/qwindows.dll", f"{plugins}\\platforms")
    assert hook.wanted("/q/libqcocoa.dylib", f"{plugins}/platforms")
    assert not hook.wanted("/q/libqwayland-egl.so", f"{plugins}/platforms")
    assert not hook.wanted("/q/libqeglfs.so", f"{plugins}/platforms")
    assert not hook.wanted("/q/libqgtk3.so", f"{plugins}/platformthemes")
    assert not hook.wanted("/q/libqsvg.so", f"{plugins}/imageformats")
    assert not hook.wanted("/q/libx.so", f"{plugins}/wayland-shell-integration")
    assert hook.wanted("/q/libqjpeg.so", f"{plugins}/imageformats")
    assert hook.wanted("/q/libQt6Gui.so.6", "PySide6/Qt/lib")
