"""X-AnyLabeling's remote-server protocol under ``/xanylabeling`` (its "server URL"
setting is ``http://127.0.0.1:PORT/xanylabeling``): ``GET /health``, ``GET /v1/models``
(one entry per task preset), ``POST /v1/predict`` → ``shapes`` and ``description``.

As X-AnyLabeling-Server does, a request it cannot answer is HTTP 200 with
``success: false`` and an error code; a full queue is 503.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.engine.events import GenerationOptions
from app.errors import PaliDeskError
from app.server.engine_host import answer_text, request_for
from app.server.job_stream import JobStream, outcome_of
from app.server.native_api import state_of
from app.server.request_errors import RequestRefused
from app.server.served_images import check_image, image_bytes
from app.server.xanylabeling_shapes import models_listing, object_shapes, preset_named

PREFIX = "/xanylabeling"
router = APIRouter(prefix=PREFIX)


def _failure(code: str, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": {"code": code, "message": message}})


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    model = state_of(request).model
    return JSONResponse({"status": "healthy" if model else "loading",
                         "models_loaded": 1 if model else 0,
                         "timestamp": datetime.now(UTC).isoformat()},
                        status_code=200 if model else 503)


@router.get("/v1/models")
async def models(request: Request) -> JSONResponse:
    model = state_of(request).require_model(None)
    return JSONResponse({"success": True, "data": models_listing(model.model_id)})


@router.post("/v1/predict")
async def predict(request: Request) -> JSONResponse:
    state = state_of(request)
    state.require_model(None)
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _failure("INVALID_REQUEST", "The body is not valid JSON.")
    if not isinstance(body, dict):
        return _failure("INVALID_REQUEST", "The body must be a JSON object.")
    preset = preset_named(str(body.get("model", "")))
    if preset is None:
        return _failure("MODEL_NOT_FOUND", f"Model {body.get('model')!r} is not one of "
                                           "PaliDesk's presets (see /v1/models).")
    params = body.get("params") or {}
    text = str(params.get("text_prompt") or "").strip() if isinstance(params, dict) else ""
    if preset.needs_text and not text:
        return _failure("INVALID_REQUEST", f"{preset.title} needs a text prompt.")
    if len(text) > 4000:
        return _failure("INVALID_REQUEST", "text_prompt: at most 4000 characters.")
    try:
        image = image_bytes(str(body.get("image", "")), "image")
        suffix = check_image(image, "image")
    except RequestRefused as exc:
        if exc.status == 413:
            raise
        return _failure("INVALID_IMAGE", exc.message)
    try:
        task = request_for(preset.task, text if preset.task == "ask" else None, "en",
                           preset.caption_style, text if preset.task in ("detect", "segment")
                           else "")
    except PaliDeskError as exc:
        return _failure("INVALID_REQUEST", str(exc))
    job = state.make_job(image, suffix, task, GenerationOptions(max_new_tokens=256))
    outcome = await outcome_of(JobStream(state, job), request.is_disconnected)
    if outcome is None:
        return JSONResponse({}, status_code=499)  # the client left; nobody reads this
    if outcome.record is None:
        return _failure("INFERENCE_ERROR", outcome.message or "The task failed.")
    record = outcome.record
    spatial = preset.task in ("detect", "segment")
    return JSONResponse({"success": True, "data": {
        "shapes": object_shapes(record.objects) if spatial else [],
        "description": "" if spatial else answer_text(record).strip()}})
