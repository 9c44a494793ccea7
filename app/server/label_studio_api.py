"""Label Studio's ML backend protocol at the root: ``POST /setup``, ``POST /predict``,
``POST /webhook`` (accepted and ignored) and ``GET /health`` (native_api's, which carries
Label Studio's keys too). Connect it in a project's Settings › Model with this server's URL.

Every translation is ``app.labeltools``'s (the config, which images may be read and
reading them, the predictions and their RLE); this module only runs the jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.engine.events import GenerationOptions
from app.labeltools.errors import LabelToolError
from app.labeltools.ls_config import TEXTAREA, ControlTask, parse_label_config
from app.labeltools.ls_images import ImageSource, LabelStudioAccess, fetch_image_bytes
from app.labeltools.ls_predictions import ControlOutput, build_prediction
from app.labeltools.ls_protocol import (
    TaskPlan,
    empty_prediction,
    plan_predict,
    predict_response,
    setup_response,
)
from app.server.engine_host import LoadedModel, answer_text
from app.server.job_stream import JobStream, outcome_of
from app.server.native_api import state_of
from app.server.request_errors import RequestRefused
from app.server.served_images import checked_image
from app.tasks import TaskRequest

log = logging.getLogger("palidesk.server")
router = APIRouter()
# What each answer may hold: Label Studio asks for up to 256 tokens of text per control.
ANSWER_TOKENS = 256
_configs: OrderedDict[str, str] = OrderedDict()  # project -> labelling config, from /setup


class _ClientGone(Exception):
    """Label Studio closed the connection: nobody reads the rest."""


def access_of(request: Request) -> LabelStudioAccess:
    return request.app.state.label_studio


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: nesting past ~1,000
        raise RequestRefused(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise RequestRefused(400, "The body must be a JSON object.")
    return body


@router.post("/setup")
async def setup(request: Request) -> JSONResponse:
    body = await _json(request)
    model = state_of(request).require_model(None)
    schema = body.get("schema")
    if isinstance(schema, str):
        try:
            parse_label_config(schema)  # a config PaliDesk cannot fill in is said now
        except LabelToolError as exc:
            raise RequestRefused(400, str(exc), "schema") from None
        _configs[str(body.get("project", ""))] = schema
        while len(_configs) > 64:
            _configs.popitem(last=False)
    return JSONResponse(setup_response(model.version))


@router.post("/webhook")
async def webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({}, status_code=201)  # training events: PaliDesk does not train


@router.post("/predict")
async def predict(request: Request) -> JSONResponse:
    body = await _json(request)
    model = state_of(request).require_model(None)
    if not isinstance(body.get("label_config"), str):
        # Label Studio sends the config with every /predict; a client that sent it to
        # /setup only gets that one.
        config = _configs.get(str(body.get("project", "")))
        if config is not None:
            body = {**body, "label_config": config}
    try:
        _, plans = plan_predict(body, access_of(request))
    except LabelToolError as exc:
        raise RequestRefused(400, str(exc), "label_config") from None
    if not any(plan.jobs for plan in plans):
        # Nothing can run: say why (an empty answer would show the user nothing at all).
        reasons = " ".join(f"tasks.{index}: {' '.join(plan.errors)}"
                           for index, plan in enumerate(plans))
        raise RequestRefused(400, reasons, "tasks")
    predictions = []
    try:
        for index, plan in enumerate(plans):
            predictions.append(await _prediction(request, model, plan, index))
    except _ClientGone:
        return JSONResponse({}, status_code=499)  # the client left; nobody reads this
    return JSONResponse(predict_response(predictions))


async def _prediction(request: Request, model: LoadedModel, plan: TaskPlan,
                      index: int) -> dict[str, Any]:
    """One task's prediction. A task whose image cannot be read (or whose data lacks a
    field) gets an empty one, its reasons logged, so the other tasks of a batch still get
    theirs; a failed generation is the server's fault and answers 500."""
    outputs: list[ControlOutput] = []
    images: dict[ImageSource, tuple[bytes, str]] = {}  # several controls, one image
    size = (0, 0)
    for job in plan.jobs:
        if job.image not in images:
            try:
                data = await asyncio.to_thread(fetch_image_bytes, job.image,
                                               max_bytes=request.app.state.max_body)
                images[job.image] = data, await checked_image(data, f"tasks.{index}.data")
            except (LabelToolError, RequestRefused) as exc:
                log.warning("Label Studio task %s: %s", plan.task_id, exc)
                return empty_prediction(model.version)
        output, size = await _run(request, job.control, job.request, *images[job.image])
        outputs.append(output)
    for reason in plan.errors:
        log.warning("Label Studio task %s: %s", plan.task_id, reason)
    if not outputs:
        return empty_prediction(model.version)
    return build_prediction(outputs, size, model.version)


async def _run(request: Request, control: ControlTask, task: TaskRequest, data: bytes,
               suffix: str) -> tuple[ControlOutput, tuple[int, int]]:
    """Run one control's task on the image; its output and the image's original size."""
    state = state_of(request)
    job = state.make_job(data, suffix, task, GenerationOptions(max_new_tokens=ANSWER_TOKENS))
    outcome = await outcome_of(JobStream(state, job), request.is_disconnected)
    if outcome is None:
        raise _ClientGone
    if outcome.record is None:
        raise RequestRefused(500, outcome.message or "The task failed.")
    record = outcome.record
    size = (record.image_width, record.image_height)
    if control.result_type == TEXTAREA:
        return ControlOutput(control, text=answer_text(record)), size
    return ControlOutput(control, objects=record.objects), size
