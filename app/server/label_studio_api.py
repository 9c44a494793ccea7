"""Label Studio's ML backend protocol at the root: ``POST /setup``, ``POST /predict``,
``POST /webhook`` (accepted and ignored) and ``GET /health`` (native_api's). Connect it in
a project's Settings › Model with this server's URL."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.engine.events import GenerationOptions
from app.server.engine_host import answer_text, request_for
from app.server.job_stream import JobStream, outcome_of
from app.server.label_studio_config import (
    Control,
    brush_results,
    read_config,
    rectangle_results,
    text_result,
    text_task,
)
from app.server.label_studio_images import LabelStudioAccess, task_image
from app.server.native_api import state_of
from app.server.request_errors import RequestRefused
from app.server.served_images import check_image

router = APIRouter()
MAX_TASKS = 100
_configs: OrderedDict[str, str] = OrderedDict()  # project -> labelling config, from /setup


def access_of(request: Request) -> LabelStudioAccess:
    return request.app.state.label_studio


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body())
    except ValueError:
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
        read_config(schema)  # a config PaliDesk cannot fill in is said now
        _configs[str(body.get("project", ""))] = schema
        while len(_configs) > 64:
            _configs.popitem(last=False)
    return JSONResponse({"model_version": model.version})


@router.post("/webhook")
async def webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({}, status_code=201)  # training events: PaliDesk does not train


@router.post("/predict")
async def predict(request: Request) -> JSONResponse:
    body = await _json(request)
    state = state_of(request)
    model = state.require_model(None)
    config = body.get("label_config") or _configs.get(str(body.get("project", "")))
    if not isinstance(config, str):
        raise RequestRefused(400, "label_config: send the project's labelling config (or "
                                  "call /setup first).", "label_config")
    controls = read_config(config)
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not 1 <= len(tasks) <= MAX_TASKS:
        raise RequestRefused(400, f"tasks: send 1 to {MAX_TASKS} tasks.", "tasks")
    results = []
    for index, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise RequestRefused(400, f"tasks.{index}.data: a task needs its data.",
                                 f"tasks.{index}.data")
        result = []
        for control in controls:
            result += await _answer(request, control, data, f"tasks.{index}.data")
        results.append({"result": result, "model_version": model.version})
    return JSONResponse({"results": results, "model_version": model.version})


async def _answer(request: Request, control: Control, data: dict,
                  field: str) -> list[dict[str, object]]:
    state = state_of(request)
    reference = data.get(control.data_key)
    where = f"{field}.{control.data_key}"
    if not isinstance(reference, str):
        raise RequestRefused(400, f"{where}: the task has no image here.", where)
    image = await asyncio.to_thread(task_image, reference, access_of(request), where)
    suffix = check_image(image, where)
    if control.kind == "TextArea":
        task, prompt = text_task(control, data)
        job_request = request_for(task, prompt, "en", "caption", "")
    else:
        if not control.labels:
            raise RequestRefused(400, f"label_config: {control.from_name} has no labels.",
                                 "label_config")
        task = "detect" if control.kind == "RectangleLabels" else "segment"
        job_request = request_for(task, None, "en", "caption", ";".join(control.labels))
    job = state.make_job(image, suffix, job_request, GenerationOptions(max_new_tokens=256))
    outcome = await outcome_of(JobStream(state, job), request.is_disconnected)
    if outcome is None:
        return []
    if outcome.record is None:
        raise RequestRefused(500, outcome.message or "The task failed.")
    record = outcome.record
    size = (record.image_width, record.image_height)
    if control.kind == "RectangleLabels":
        return rectangle_results(control, record.objects, size)
    if control.kind == "BrushLabels":
        return brush_results(control, record.objects, size)
    return [text_result(control, answer_text(record).strip(), size)]
