"""The core's rules, one test each, without Qt: what every face (the window, run, batch
and its Ray workers, eval, the speed test, the server) decides the same way."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.batch.job import BatchJob
from app.batch.record_keys import ResultsFileError, keys_of
from app.batch.results_log import ResultsLog
from app.engine.context_size import context_new_tokens, engine_config
from app.engine.events import GenerationOptions
from app.engine.image_files import images_in, is_image_name, walk_folder
from app.errors import ModelFolderError
from app.export.eligibility import missing_results
from app.history.history_record import HistoryRecord
from app.session.done_rule import ended_within, record_answers, record_work_key, work_key
from app.session.identity import ModelIdentity, options_key
from app.session.model_choice import ModelRequest, kept_until_loaded, remember_loaded
from app.session.model_resolver import resolve_model
from app.session.result_store import reusable
from app.settings import Settings
from app.tasks import TaskKind, TaskRequest, build_prompt
from app.tasks.output_text import clean_output_text, without_end_marker
from app.tasks.presets import PRESETS, PT_WARNING, checkpoint_warning, preset_by_key
from conftest import IMAGES

MODEL = ModelIdentity("pair-a", "tiny", "F16", "/models/tiny")
CAPTION = TaskRequest(kind=TaskKind.CAPTION)


def _job(max_new: int = 8, temperature: float = 0.0, seed: int = 0) -> BatchJob:
    options = GenerationOptions(max_new_tokens=max_new, temperature=temperature, seed=seed)
    return BatchJob(MODEL, CAPTION, build_prompt(CAPTION), options)


def _record(image: str, tokens: int, stop: str, max_new: int | None,
            key: str | None = "greedy", sha: str = "ab" * 32) -> dict:
    record = {"image": image, "image_sha256": sha, "prompt": build_prompt(CAPTION),
              "model": "tiny", "model_id": "pair-a", "quantization": "F16",
              "tokens": list(range(tokens)), "text": "x", "stop_reason": stop}
    if max_new is not None:
        record["max_new_tokens"] = max_new
    if key is not None:
        record["options_key"] = key
    return record


def _history(task: str, **fields: object) -> HistoryRecord:
    return HistoryRecord(image_path="/i.png", image_sha256="ab", image_width=1,
                         image_height=1, task=task, prompt="caption en", model="tiny",
                         quantization="F16", text="a", **fields)


# --- one model identity ------------------------------------------------------------------


def test_one_identity_serves_the_window_and_ray_workers() -> None:
    pair = SimpleNamespace(pair_id="pair-a", quant="Q8_0", folder=Path("models/tiny"))
    identity = ModelIdentity.of(pair)
    assert (identity.pair_id, identity.name, identity.quant) == ("pair-a", "tiny", "Q8_0")
    assert Path(identity.folder).is_absolute()  # what a Ray worker opens
    assert ModelIdentity.of(pair, "google/paligemma2").describe() == "google/paligemma2 · Q8_0"
    job = _job()
    assert pickle.loads(pickle.dumps(job)) == job  # shipped to every Ray worker


# --- one "already done" rule ---------------------------------------------------------------


def test_the_max_tokens_rule() -> None:
    assert ended_within("eos", 5, 8, 30)  # ended on its own within the new limit
    assert not ended_within("eos", 20, 30, 8)  # longer than the new limit allows
    assert ended_within("max_tokens", 8, 8, 8)  # cut at the same limit
    assert not ended_within("max_tokens", 8, 8, 30)  # a higher limit would let it go on
    assert ended_within("max_tokens", 8, 0, 8)  # limit not recorded: its length tells
    assert not ended_within("max_tokens", 8, 0, 9)
    assert not ended_within("cancelled", 3, 8, 8)


def test_the_window_and_batch_apply_the_same_rule() -> None:
    for stop, tokens, made, new in (("eos", 5, 8, 30), ("max_tokens", 8, 8, 30),
                                    ("max_tokens", 8, 8, 8), ("eos", 20, 30, 8),
                                    ("cancelled", 3, 8, 8)):
        history = _history("caption", tokens=list(range(tokens)), stop_reason=stop,
                           max_new_tokens=made)
        batch = _record("/i.png", tokens, stop, made)
        assert reusable(history, new) == record_answers(batch, new), (stop, tokens, made, new)


def test_options_are_part_of_the_work_key_and_old_records_read_as_greedy() -> None:
    greedy = GenerationOptions(max_new_tokens=8)
    sampled = GenerationOptions(max_new_tokens=8, temperature=1.0, seed=3)
    assert options_key(greedy) == "greedy"
    assert options_key(GenerationOptions(max_new_tokens=99, seed=5)) == "greedy"
    args = ("ab" * 32, "/i.png", "caption en", "pair-a", "F16")
    assert work_key(*args, options_key(greedy)) != work_key(*args, options_key(sampled))
    old = _record("/i.png", 8, "max_tokens", None, key=None)
    assert record_work_key(old) == work_key(*args, "greedy")
    assert record_work_key(_record("/i.png", 8, "max_tokens", 8, key=options_key(sampled))) \
        == work_key(*args, options_key(sampled))
    assert record_answers({"image": "/i.png", "error": "unreadable"}, 500)


def test_a_resumed_file_counts_only_what_answers_the_job(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    lines = [_record("/a.png", 8, "max_tokens", 8),  # cut at 8
             _record("/b.png", 5, "eos", 8, sha="cd" * 32),  # ended on its own
             _record("/c.png", 8, "max_tokens", 8, key="sample:t=1:k=0:p=1:seed=3",
                     sha="ef" * 32)]
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with ResultsLog(out, resume=True, job=_job(max_new=30)) as log:
        assert not log.has_entry(keys_of(lines[0])[1])  # runs again with 30
        assert log.has_entry(keys_of(lines[1])[1])
        assert log.other_options_records == 2
    with ResultsLog(out, resume=True, job=_job(max_new=8)) as log:
        assert log.has_entry(keys_of(lines[0])[1]) and log.other_options_records == 1
        snapshot = log.snapshot()  # what Ray workers get: the same filtering
        assert snapshot.has_entry(keys_of(lines[0])[1])
    with ResultsLog(out, resume=True, job=_job(max_new=8, temperature=1.0, seed=3)) as log:
        assert log.has_entry(keys_of(lines[2])[1]) and log.other_options_records == 2


@pytest.mark.parametrize("bad", ['"abc"', "1e400", "[8]"])
def test_a_results_line_with_a_bad_limit_is_a_sentence(tmp_path: Path, bad: str) -> None:
    # The limit is read by the max-tokens rule after the line's keys were checked: a value
    # that int() refuses raised ValueError/OverflowError/TypeError, a traceback on resume.
    out = tmp_path / "r.jsonl"
    line = json.dumps(_record("/a.png", 8, "max_tokens", 8))
    out.write_text(line.replace('"max_new_tokens": 8', f'"max_new_tokens": {bad}') + "\n")
    with pytest.raises(ResultsFileError, match="Line 1 of"):
        ResultsLog(out, resume=True, job=_job(max_new=8))


# --- one model resolver -------------------------------------------------------------------


def test_model_argument_is_a_path_or_an_installed_name(tmp_path: Path) -> None:
    folder = tmp_path / "somewhere" / "tiny"
    folder.mkdir(parents=True)
    assert resolve_model(folder, tmp_path / "models") == folder
    assert resolve_model(tmp_path / "missing" / "x", tmp_path) == tmp_path / "missing" / "x"
    models = tmp_path / "models"
    (models / "tiny").mkdir(parents=True)
    (models / "tiny" / "manifest.json").write_text("{}")
    assert resolve_model("tiny", models) == models / "tiny"
    with pytest.raises(ModelFolderError, match="No model is installed yet"):
        resolve_model("tiny", tmp_path / "empty")


# --- one engine sizing --------------------------------------------------------------------


def test_context_sizing() -> None:
    assert context_new_tokens(None) == 2048  # the window and the server: any limit later
    assert context_new_tokens(8) == 512 and context_new_tokens(1000) == 1000
    config = engine_config(gpu_layers=-1, threads=2, max_new_tokens=30)
    assert (config.gpu_layers, config.threads, config.max_new_tokens_limit) == (-1, 2, 512)
    assert _job(max_new=700).engine_config().max_new_tokens_limit == 700


def test_the_answer_does_not_depend_on_the_context_size(converted) -> None:
    """Why a result made by `run` (context for 512) counts as done in the window (2048)."""
    from app.engine.engine import Engine
    from app.model_files.model_folder import ModelFolder

    pair = ModelFolder(converted("pg2-tiny-224")).resolve("F16")
    answers = []
    for room in (None, 40):
        engine = Engine()
        engine.load(pair, engine_config(max_new_tokens=room))
        try:
            events = list(engine.generate(IMAGES / "shapes_320x240.png", "caption en",
                                          GenerationOptions(max_new_tokens=40)))
            answers.append(events[-1].tokens)
        finally:
            engine.close()
    assert answers[0] == answers[1] and len(answers[0]) > 1


def test_load_plan_given_everything_asks_no_estimate(converted) -> None:
    from app.session.load_plan import plan_load

    folder = converted("pg2-tiny-224")
    plan = plan_load(folder, "q8_0", 0, 2, 8)
    assert (plan.pair.quant, plan.config.gpu_layers, plan.config.threads) == ("Q8_0", 0, 2)
    assert plan.config.max_new_tokens_limit == 512 and plan.choice is None
    assert plan_load(folder, None, 0, choose_quant=False).pair.quant == "F32"  # best present


def test_load_plan_chooses_layers_for_the_quantization_that_loads(converted) -> None:
    from app.hardware import HardwareReport, SystemInfo
    from app.session.load_plan import plan_load

    cpu_only = HardwareReport((), None, SystemInfo(32 << 30, 16 << 30, 8, "cpu", "AVX2"), False)
    plan = plan_load(converted("pg2-tiny-224"), "F16", None, hardware=cpu_only)
    assert plan.pair.quant == "F16" and plan.config.gpu_layers == 0 and plan.choice
    assert plan.config.max_new_tokens_limit == 2048  # no fixed limit given: the window's
    from app.models.fit_choice import load_choice

    # The estimate is made for the quantization that loads, not the one chosen among all
    # (on a CPU the automatic choice never takes F16).
    assert load_choice(converted("pg2-tiny-224"), "F16", cpu_only).quant == "F16"
    assert load_choice(converted("pg2-tiny-224"), None, cpu_only).quant != "F16"


def test_the_window_settings_ask_for_a_quantization_or_the_automatic_choice() -> None:
    from app.session.load_plan import quant_from_settings

    assert quant_from_settings(Settings(quantization="auto")) is None
    assert quant_from_settings(Settings(quantization="")) is None
    assert quant_from_settings(Settings(quantization="Q8_0")) == "Q8_0"


def test_mask_decoder_choice(tmp_path: Path) -> None:
    from app.session.load_plan import choose_mask_decoder

    assert choose_mask_decoder(False, tmp_path) == (None, None)
    assert choose_mask_decoder(True, tmp_path, tmp_path / "vae.npz") == (tmp_path / "vae.npz",
                                                                         None)
    found, problem = choose_mask_decoder(True, tmp_path)
    assert found is None and problem


# --- one image walker, one cleaner -------------------------------------------------------


def test_one_walk_and_order_for_every_face(tmp_path: Path) -> None:
    for name in ("b/2.png", "B/1.JPG", "a/z.webp", "a/.hidden/x.png", "c.txt", ".d.png",
                 "Z.png", "y.tiff"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    names = [str(Path(p).relative_to(tmp_path)) for p in images_in(tmp_path)]
    assert names == ["y.tiff", "Z.png", "a/z.webp", "B/1.JPG", "b/2.png"]
    assert ("c.txt" in [Path(p).name for p, image in walk_folder(tmp_path) if not image])
    assert is_image_name("X.JPEG") and not is_image_name("notes.txt")


def test_the_ui_and_batch_walk_the_same_folder_the_same_way(tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    from app.batch.inputs import iter_image_paths
    from app.ui.image_files import expand_paths

    for name in ("b.png", "A.png", "sub/C.jpg", "sub/a.gif", "skip.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    window, _notes = expand_paths([tmp_path])
    assert [str(p) for p in window] == list(iter_image_paths([str(tmp_path)]))


def test_one_output_cleaner() -> None:
    assert clean_output_text("  <bos>a cat<eos><pad>\n") == "a cat"
    assert without_end_marker("a cat<eos>\n") == "a cat"
    assert without_end_marker("a ca") == "a ca"


# --- policy that lived in widgets -----------------------------------------------------------


def test_presets_and_checkpoint_warning() -> None:
    assert preset_by_key("detect").field == "classes" and preset_by_key("nope") is None
    assert len({p.key for p in PRESETS}) == len(PRESETS)
    assert checkpoint_warning(preset_by_key("caption"), "pt") == PT_WARNING
    assert checkpoint_warning(preset_by_key("custom"), "pt") == ""
    assert checkpoint_warning(preset_by_key("caption"), "mix") == ""


def test_export_eligibility() -> None:
    caption = _history("caption")
    assert missing_results([], "jsonl") == "There are no results to export yet."
    assert "detections" in missing_results([caption], "coco")
    assert "masks" in missing_results([caption], "mask_png")
    assert missing_results([caption], "captions") == ""


def test_a_model_folder_is_remembered_only_once_it_loaded() -> None:
    old = Settings(model_folder="/models/a", threads=2)
    new = Settings(model_folder="/models/b", threads=4)
    saved = kept_until_loaded(old, new)
    assert saved.model_folder == "/models/a" and saved.threads == 4
    loaded = remember_loaded(saved, ModelRequest(Path("/models/b"), saved.quantization))
    assert loaded is not None and loaded.model_folder == "/models/b"
    assert remember_loaded(saved, ModelRequest(Path("/models/a"), saved.quantization)) is None


# --- the steps a server takes, end to end ----------------------------------------------------


def test_the_server_path_through_the_core(converted, tmp_path: Path) -> None:
    """resolve -> plan -> load -> new_job -> execute_job -> a run --json-like record; the
    same request again is answered from the store; other options run again."""
    from app.engine.engine import Engine
    from app.history import HistoryStore
    from app.session import ResultStore, new_job
    from app.session.job import DONE, SKIPPED, JobOutcome
    from app.session.job_runner import execute_job
    from app.session.load_plan import plan_load
    from app.session.result_json import stored_record

    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny").symlink_to(converted("pg2-tiny-224"))
    plan = plan_load(resolve_model("tiny", models), "F16", 0)
    engine = Engine()
    engine.load(plan.pair, plan.config)
    history = HistoryStore(tmp_path / "history.sqlite3")
    store = ResultStore(history)
    image = IMAGES / "noise_97x150.png"

    def ask(max_new: int, temperature: float = 0.0) -> JobOutcome:
        job = new_job(image, CAPTION, GenerationOptions(max_new_tokens=max_new,
                                                        temperature=temperature, seed=1),
                      plan.identity)
        (outcome,) = [e for e in execute_job(engine, job, store) if isinstance(e, JobOutcome)]
        return outcome

    try:
        first = ask(6)
        assert first.status == DONE
        record = stored_record(first.record)
        assert record["model_id"] == plan.pair.pair_id and record["quantization"] == "F16"
        assert record["options_key"] == "greedy" and record["max_new_tokens"] == 6
        assert record["tokens"] == first.record.tokens and record["id"] is not None
        again = ask(6)
        assert again.status == SKIPPED and again.record.id == first.record.id
        if first.record.stop_reason == "max_tokens":  # cut at 6: a higher limit runs again
            assert ask(12).status == DONE
        assert ask(6, temperature=1.0).status == DONE  # sampled is other work
    finally:
        engine.close()
        history.close()
