"""The core every face decides through: the window, ``palidesk run``, ``batch`` (the local
loop and every Ray worker) and the local server. Qt-free.

Public API (import from the modules named; this package exports the light ones):

- ``identity.ModelIdentity`` (pair id, name, quantization, folder; picklable) and
  ``identity.options_key``: which model and which options made a result.
- ``done_rule``: the one "already done" rule — ``ended_within`` (the max-tokens rule),
  ``work_key`` / ``record_work_key`` (image bytes + prompt + pair + quantization +
  options key), ``record_answers`` (a batch line against a job's limit).
- ``model_resolver.resolve_model`` (``--model NAME|DIR``) and
  ``models_dir_from_settings``.
- ``load_plan.plan_load`` -> ``LoadPlan`` (pair, EngineConfig, the automatic choice's
  sentence, ``identity``); ``engine_config`` / ``context_new_tokens`` (the one sizing
  rule, kept in ``app.engine.context_size`` so the evaluation code below the core uses
  it); ``choose_mask_decoder``.
- ``job.Job`` (what was asked, frozen), ``job.new_job`` for faces without a Session,
  ``job.JobOutcome``; ``job_runner.execute_job(engine, job, store)``: skip, run, store.
- ``result_store.ResultStore``: the history as the home of every result (``find_done``
  applies ``done_rule``); ``result_json``: a result as ``run --json`` plus its identity
  (``result_record``, ``failure_record``, ``stored_record``).
- ``session.Session`` and ``batch.Batch``: the window's state (running job, "Run all");
  ``session.options_from_settings``, ``needs_reload``; ``model_choice``: a model folder
  and quantization are remembered only once they loaded (``kept_until_loaded``,
  ``remember_loaded``).

Shared with the layers below the core (so evaluation and export use them too): the image
walker and suffixes (``app.engine.image_files``), the output cleaner
(``app.tasks.output_text``), the task presets (``app.tasks.presets``), export eligibility
(``app.export.eligibility``) and the GPU layers of the automatic choice
(``app.models.fit_choice.auto_gpu_layers``). docs: CORE_API.md.
"""

from app.session.batch import Batch, JobState
from app.session.identity import ModelIdentity, options_key
from app.session.job import Job, JobOutcome, new_job
from app.session.result_store import ResultStore
from app.session.session import Session

__all__ = ["Batch", "Job", "JobOutcome", "JobState", "ModelIdentity", "ResultStore",
           "Session", "new_job", "options_key"]
