"""A Label Studio ``/predict`` request as PaliDesk jobs, and the protocol's answer shapes.

The ML backend protocol (label-studio-ml-backend's ``label_studio_ml/api.py``):
``POST /predict`` gets ``{"tasks": [{"id": …, "data": {"image": url, …}}, …],
"label_config": xml, "project": "id.timestamp", "params": {…}}`` and answers
``{"results": [prediction, …]}``, one prediction per task, in order; ``POST /setup`` gets
``{"project": …, "schema": xml}`` and answers ``{"model_version": …}``; ``GET /health``
answers ``{"status": "UP", "model_class": …}``; ``POST /webhook`` is accepted and
ignored (PaliDesk does not train).

A route calls ``plan_predict``, runs each ``ControlJob`` (the request on the image) as
PaliDesk's job, hands the outputs to ``ls_predictions.build_prediction``, and answers
``predict_response``. A task whose image may not be read, or whose data lacks a field,
gets an empty prediction and its sentence in ``TaskPlan.errors``: the other tasks of the
batch still get theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import TaskError
from app.labeltools.errors import LabelToolError
from app.labeltools.ls_config import (
    ControlTask,
    LabelingPlan,
    image_reference,
    parse_label_config,
    request_for_task,
)
from app.labeltools.ls_images import ImageSource, LabelStudioAccess, resolve_image_reference
from app.tasks.prompts import TaskRequest

MODEL_CLASS = "PaliDesk"
MAX_TASKS = 100  # Label Studio sends one task per /predict when annotating, more in batch


@dataclass(frozen=True)
class ControlJob:
    """One PaliDesk task to run for one control of one Label Studio task."""

    control: ControlTask
    request: TaskRequest
    image: ImageSource


@dataclass(frozen=True)
class TaskPlan:
    """What to run for one Label Studio task (``task_id`` as Label Studio sent it)."""

    task_id: Any
    jobs: tuple[ControlJob, ...]
    errors: tuple[str, ...] = ()


def plan_predict(
    body: Mapping[str, Any], access: LabelStudioAccess
) -> tuple[LabelingPlan, list[TaskPlan]]:
    """Read a ``/predict`` body into the config's plan and one ``TaskPlan`` per task.

    Raises ``LabelToolError`` (a ``LabelConfigError`` for the config) when the body as a
    whole cannot be used: no tasks, too many, not the protocol's shape, a config PaliDesk
    cannot fill.
    """
    if not isinstance(body, Mapping):
        raise LabelToolError("The /predict request must be a JSON object.")
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise LabelToolError('The /predict request has no "tasks" list.')
    if len(tasks) > MAX_TASKS:
        raise LabelToolError(f"The /predict request holds {len(tasks)} tasks; PaliDesk "
                             f"takes up to {MAX_TASKS} at a time.")
    config = body.get("label_config")
    if not isinstance(config, str):
        raise LabelToolError('The /predict request has no "label_config" (the project\'s '
                             "labelling config).")
    plan = parse_label_config(config)
    return plan, [_plan_task(task, plan, access) for task in tasks]


def _plan_task(task: Any, plan: LabelingPlan, access: LabelStudioAccess) -> TaskPlan:
    if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
        return TaskPlan(None, (), ('A task has no "data" object.',))
    data = task["data"]
    jobs: list[ControlJob] = []
    errors: list[str] = []
    for control in plan.controls:
        try:
            source = resolve_image_reference(image_reference(control, data), access)
            jobs.append(ControlJob(control, request_for_task(control, data), source))
        except (LabelToolError, TaskError) as exc:
            if str(exc) not in errors:
                errors.append(str(exc))
    return TaskPlan(task.get("id"), tuple(jobs), tuple(errors))


def predict_response(predictions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"results": [...]}``, the predictions in the tasks' order."""
    return {"results": [dict(prediction) for prediction in predictions]}


def empty_prediction(version: str) -> dict[str, Any]:
    """The prediction for a task PaliDesk could not run: no result, so nothing is drawn."""
    return {"result": [], "model_version": version}


def setup_response(version: str) -> dict[str, Any]:
    """The ``/setup`` answer."""
    return {"model_version": version}


def health_response() -> dict[str, Any]:
    """The ``/health`` answer Label Studio checks when the model is connected."""
    return {"status": "UP", "model_class": MODEL_CLASS}
