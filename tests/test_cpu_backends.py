"""Choosing and loading llama.cpp's CPU variant in a release build (app/engine/cpu_backends.py).

The real variant files exist only in a packaging build; packaging/ci_check.sh runs the
unpacked .deb with them (best variant, fallback, none loadable). Here: the choice itself,
file recognition, and scoring through ctypes on small stand-in libraries.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from app.engine.cpu_backends import (
    BackendState,
    Candidate,
    NoCpuBackendError,
    choose_cpu_variant,
    library_files,
    load_backends,
    score_file,
)
from app.errors import EngineError


def _candidates(**scores: int) -> list[Candidate]:
    return [Candidate(name, Path(f"/lib/libggml-cpu-{name}.so"), score)
            for name, score in scores.items()]


def test_the_best_supported_variant_is_loaded():
    tried: list[str] = []

    def load(path: Path) -> bool:
        tried.append(path.name)
        return True

    chosen, skipped = choose_cpu_variant(
        _candidates(x64=1, haswell=40, zen4=90, icelake=80, skylakex=0), load)
    assert chosen == "zen4"
    assert tried == ["libggml-cpu-zen4.so"]
    assert "skylakex: this CPU lacks its instructions" in skipped


def test_amx_variant_is_passed_over_even_when_it_scores_highest():
    chosen, skipped = choose_cpu_variant(
        _candidates(sapphirerapids=200, zen4=90, haswell=40), lambda path: True)
    assert chosen == "zen4"
    assert any(s.startswith("sapphirerapids: uses AMX") for s in skipped)


def test_a_variant_that_fails_to_load_falls_back_to_the_next_best():
    chosen, skipped = choose_cpu_variant(
        _candidates(zen4=90, icelake=80, haswell=40),
        lambda path: "zen4" not in path.name and "icelake" not in path.name)
    assert chosen == "haswell"
    assert skipped == ["zen4: llama.cpp could not load it", "icelake: llama.cpp could not load it"]


def test_an_unopenable_file_is_skipped_with_its_reason():
    broken = Candidate("zen4", Path("/lib/libggml-cpu-zen4.so"), 0, problem="invalid ELF header")
    chosen, skipped = choose_cpu_variant([broken, *_candidates(haswell=40)], lambda path: True)
    assert chosen == "haswell"
    assert skipped == ["zen4: cannot be opened (invalid ELF header)"]


def test_no_loadable_variant_is_a_plain_engine_error():
    with pytest.raises(NoCpuBackendError) as exc:
        choose_cpu_variant(_candidates(zen4=90, haswell=40), lambda path: False)
    assert isinstance(exc.value, EngineError)  # the CLI and the window show it as is
    text = str(exc.value)
    assert text.startswith("No CPU backend could be loaded")
    assert "zen4: llama.cpp could not load it" in text and "Reinstall PaliDesk" in text
    with pytest.raises(NoCpuBackendError, match="no libggml-cpu-"):
        choose_cpu_variant([], lambda path: True)


def test_a_forced_variant_is_the_only_one_tried_and_may_be_amx():
    chosen, _ = choose_cpu_variant(
        _candidates(sapphirerapids=200, zen4=90), lambda path: True, forced="sapphirerapids")
    assert chosen == "sapphirerapids"
    chosen, _ = choose_cpu_variant(_candidates(zen4=90, haswell=40), lambda path: True,
                                   forced="haswell")
    assert chosen == "haswell"
    with pytest.raises(NoCpuBackendError, match="no libggml-cpu-icelak file"):
        choose_cpu_variant(_candidates(zen4=90), lambda path: True, forced="icelak")
    # ...but never one this CPU cannot run.
    with pytest.raises(NoCpuBackendError, match=r"'skylakex'.*lacks its instructions"):
        choose_cpu_variant(_candidates(skylakex=0, haswell=40), lambda path: True,
                           forced="skylakex")


def test_library_files_recognises_variants_and_gpu_backends(tmp_path):
    names = ["libggml.so", "libggml.so.0", "libggml-base.so.0", "libllama.so",
             "libggml-cpu-x64.so", "libggml-cpu-icelake.so", "libggml-cpu-armv8.2_1.so",
             "libggml-cuda.so", "libggml-vulkan.so", "libmtmd.so", "ggml-cpu-haswell.dll"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    cpu, gpu = library_files(tmp_path)
    assert set(cpu) == {"x64", "icelake", "armv8.2_1", "haswell"}
    assert set(gpu) == {"cuda", "vulkan"}
    assert library_files(tmp_path / "absent") == ({}, {})


def test_a_build_with_the_cpu_backend_linked_in_needs_nothing_loaded():
    # The dev venv's llama.cpp (tools/bootstrap.py) links its CPU backend in: no variant
    # files, CPU registered from the start. (A run-time-loaded build whose variant files
    # are all gone is the other case: packaging/ci_check.sh checks it on the bundle.)
    from app.engine.llama_library import library_dir

    cpu_files, _ = library_files(library_dir())
    if cpu_files:
        pytest.skip("this venv has a run-time-loaded llama.cpp build")
    state = load_backends(library_dir())
    assert state == BackendState(dynamic=False)
    assert state.cpu_description().startswith("built in")


def test_descriptions_for_reports():
    state = BackendState(True, "icelake")
    assert state.cpu_description() == "icelake (AVX-512 VBMI, VNNI)"
    assert state.gpu_notice() is None
    no_driver = BackendState(True, "haswell", gpu_missing=("cuda: libcuda.so.1: not found",))
    assert no_driver.gpu_notice() == (
        "This PaliDesk is a CUDA build, but the CUDA backend could not be loaded (is the GPU "
        "driver installed?), so models run on the CPU.")
    assert BackendState(True, "haswell", gpu_loaded=("cuda",)).gpu_notice() is None


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_score_file_asks_the_library_itself(tmp_path):
    source = tmp_path / "variant.c"
    source.write_text("int ggml_backend_score(void) { return 42; }\n")
    library = tmp_path / "libggml-cpu-test.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    assert score_file("test", library) == Candidate("test", library, 42)

    garbage = tmp_path / "libggml-cpu-broken.so"
    garbage.write_bytes(b"not an ELF file")
    broken = score_file("broken", garbage)
    assert broken.score == 0 and broken.problem  # dlopen's own words

    (tmp_path / "empty.c").write_text("int unrelated(void) { return 1; }\n")
    no_score = tmp_path / "libggml-cpu-none.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(no_score), str(tmp_path / "empty.c")],
                   check=True)
    assert score_file("none", no_score).problem == "no ggml_backend_score"


def _pretend(monkeypatch, state: BackendState | None = None, error: str | None = None):
    """Make the process's llama.cpp set-up report ``state`` (or fail with ``error``)."""
    import app.engine.llama_library as library

    def ensure_backend() -> BackendState:
        if error:
            raise NoCpuBackendError(error)
        assert state is not None
        return state

    monkeypatch.setattr(library, "ensure_backend", ensure_backend)


def test_palidesk_hardware_names_the_chosen_variant(monkeypatch, capsys):
    import json

    from app.cli.hardware_command import print_hardware

    _pretend(monkeypatch, BackendState(True, "icelake"))
    assert print_hardware() == 0
    assert "cpu backend:  icelake (AVX-512 VBMI, VNNI)" in capsys.readouterr().out
    assert print_hardware(as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["cpu_backend"] == "icelake (AVX-512 VBMI, VNNI)"


def test_no_cpu_backend_is_reported_not_raised(monkeypatch, capsys):
    from app.cli.hardware_command import print_hardware
    from app.selftest import FAILED, run_self_test

    _pretend(monkeypatch, error="No CPU backend could be loaded, so llama.cpp cannot run: x")
    assert print_hardware() == 0  # the report still works, and says so
    assert "cpu backend:  none could be loaded (No CPU backend" in capsys.readouterr().out
    def window_check(*args, **kwargs):
        raise AssertionError("the window must not open without llama.cpp")

    assert run_self_test(window_check) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"{FAILED}: No CPU backend could be loaded, so llama.cpp cannot run: x"


def test_about_box_names_the_chosen_variant(monkeypatch):
    from app.ui.about_dialog import about_text

    _pretend(monkeypatch, BackendState(True, "zen4"))
    assert "<b>CPU backend:</b> zen4 (AVX-512 VBMI, VNNI, BF16)" in about_text()


def test_gpu_build_without_its_driver_gets_the_notice(monkeypatch):
    from app.build_info import gpu_build_advice

    _pretend(monkeypatch, BackendState(True, "zen4", gpu_missing=("cuda: libcuda.so.1",)))
    assert gpu_build_advice().startswith("This PaliDesk is a CUDA build, but the CUDA backend")
