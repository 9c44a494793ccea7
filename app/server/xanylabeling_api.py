"""X-AnyLabeling's remote-server protocol under ``/xanylabeling`` (its "server URL"
setting is ``http://127.0.0.1:PORT/xanylabeling``): ``GET /health``, ``GET /v1/models``
and ``GET /v1/models/{id}/info`` (one model per task preset of the window),
``POST /v1/predict`` → ``shapes`` and ``description``.

Every translation is ``app.labeltools``'s (``xany_models``, ``xany_shapes``); this
module only runs the job. As X-AnyLabeling-Server does, a request it cannot answer is
HTTP 200 with ``success: false`` and an error code; a full queue is 503.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.engine.events import GenerationOptions
from app.errors import TaskError
from app.labeltools.errors import LabelToolError
from app.labeltools.xany_models import (
    health_response,
    is_model,
    model_info,
    models_response,
    request_for_predict,
)
from app.labeltools.xany_shapes import error_response, predict_data, predict_response
from app.server.engine_host import answer_text
from app.server.job_stream import JobStream, outcome_of
from app.server.native_api import state_of
from app.server.request_errors import RequestRefused
from app.server.served_images import checked_image, image_bytes

PREFIX = "/xanylabeling"
ANSWER_TOKENS = 256
router = APIRouter(prefix=PREFIX)


def _failure(code: str, message: str) -> JSONResponse:
    return JSONResponse(error_response(code, message))


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    loaded = state_of(request).model is not None
    return JSONResponse(health_response(1 if loaded else 0), status_code=200 if loaded else 503)


@router.get("/v1/models")
async def models(request: Request) -> JSONResponse:
    model = state_of(request).require_model(None)
    return JSONResponse(models_response(model.identity.describe()))


@router.get("/v1/models/{model_id}/info")
async def info(request: Request, model_id: str) -> JSONResponse:
    model = state_of(request).require_model(None)
    try:
        data = model_info(model_id, model.identity.describe())
    except LabelToolError as exc:
        return _failure("MODEL_NOT_FOUND", str(exc))
    return JSONResponse({"success": True, "data": data})


@router.post("/v1/predict")
async def predict(request: Request) -> JSONResponse:
    state = state_of(request)
    state.require_model(None)
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: nesting past ~1,000
        return _failure("INVALID_REQUEST", "The body is not valid JSON.")
    if not isinstance(body, dict):
        return _failure("INVALID_REQUEST", "The body must be a JSON object.")
    if not is_model(body.get("model")):
        return _failure("MODEL_NOT_FOUND", f"Model {body.get('model')!r} is not one of "
                                           "PaliDesk's presets (see /v1/models).")
    try:
        task = request_for_predict(body["model"], body.get("params"))
    except (LabelToolError, TaskError) as exc:
        return _failure("INVALID_REQUEST", str(exc))
    try:
        image = image_bytes(str(body.get("image", "")), "image")
        suffix = await checked_image(image, "image")
    except RequestRefused as exc:
        if exc.status == 413:
            raise
        return _failure("INVALID_IMAGE", exc.message)
    job = state.make_job(image, suffix, task, GenerationOptions(max_new_tokens=ANSWER_TOKENS))
    outcome = await outcome_of(JobStream(state, job), request.is_disconnected)
    if outcome is None:
        return JSONResponse({}, status_code=499)  # the client left; nobody reads this
    if outcome.record is None:
        return _failure("INFERENCE_ERROR", outcome.message or "The task failed.")
    record = outcome.record
    if task.kind.is_spatial:
        return JSONResponse(predict_response(predict_data(record.objects)))
    return JSONResponse(predict_response(predict_data(description=answer_text(record))))
