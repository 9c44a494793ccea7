"""PaliDesk's own endpoints: ``GET /health``, ``GET /v1/models`` and ``POST /v1/run``
(`palidesk run --json`'s record for one image, from JSON or a multipart upload).

``/health`` is also Label Studio's (its ML backend protocol checks ``GET /health`` at the
root): one answer carries PaliDesk's keys (``status``, ``model``, ``queued``) and Label
Studio's (``status: "UP"``, ``model_class``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.engine.events import GenerationOptions
from app.errors import PaliDeskError
from app.labeltools.ls_protocol import health_response
from app.server.engine_host import installed_model_names, request_for, run_record
from app.server.job_stream import Dropped, JobStream
from app.server.request_errors import RequestRefused
from app.server.schemas import RunOptions, RunRequest
from app.server.serve_state import ServeState
from app.server.served_images import checked_image, image_bytes
from app.session.job import CANCELLED, DONE, JobOutcome

router = APIRouter()


def state_of(request: Request) -> ServeState:
    return request.app.state.serve


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """Answers at once, whatever the engine is doing: 200 once the model is loaded."""
    state = state_of(request)
    model = state.model
    body: dict[str, object] = health_response()  # {"status": "UP", "model_class": …}
    code = 200
    if model is None:
        body["status"], code = ("error" if state.load_error else "loading"), 503
    body.update(model=model.model_id if model is not None else None,
                queued=state.queue.queued)
    if state.load_error:
        body["error"] = state.load_error
    return JSONResponse(body, status_code=code)


@router.get("/v1/models")
async def models(request: Request) -> JSONResponse:
    """The installed models, the served one marked ``"loaded": true`` (and listed even
    when it was loaded from a folder outside the models folder)."""
    model = state_of(request).model
    names = installed_model_names()
    if model is not None and model.model_id not in names:
        names.insert(0, model.model_id)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "palidesk",
             "loaded": model is not None and name == model.model_id} for name in names]
    return JSONResponse({"object": "list", "data": data})


@router.post("/v1/run")
async def run(request: Request) -> JSONResponse:
    state = state_of(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        options, data, name = await _from_form(request)
    else:
        body = await _json_body(request)
        options = _validated(RunRequest, body)
        data = image_bytes(options.image, "image")
        name = options.image_name
    state.require_model(options.model)
    suffix = await checked_image(data, "image")
    try:
        task = request_for(options.task, options.prompt, options.lang, options.caption_style,
                           options.classes)
        generation = GenerationOptions(
            max_new_tokens=options.max_tokens, temperature=options.temperature,
            top_k=options.top_k, top_p=options.top_p, seed=options.seed)
    except PaliDeskError as exc:
        raise RequestRefused(400, str(exc)) from None
    job = state.make_job(data, suffix, task, generation)
    stream = JobStream(state, job)
    async for event in stream.events(request.is_disconnected):
        if isinstance(event, Dropped):
            raise RequestRefused(503, "The server shut down before this request ran.")
        if isinstance(event, JobOutcome):
            return _answer(event, name or f"upload-{job.image_sha256[:12]}")
    return JSONResponse({}, status_code=499)  # the client left; nobody reads this


def _answer(outcome: JobOutcome, image_name: str) -> JSONResponse:
    if outcome.status in (DONE, CANCELLED) and outcome.record is not None:
        record = run_record(outcome.record)
        record["image"] = image_name
        return JSONResponse(record)
    raise RequestRefused(500, outcome.message or "The task failed.")


async def _json_body(request: Request) -> object:
    import json

    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting past ~1,000
        raise RequestRefused(400, "The body is not valid JSON.") from None


async def _from_form(request: Request) -> tuple[RunOptions, bytes, str | None]:
    form = await request.form(max_files=1, max_fields=32)
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise RequestRefused(400, "image: attach the image file as the form field 'image'.",
                             "image")
    fields = {k: v for k, v in form.items() if k != "image" and isinstance(v, str)}
    options = _validated(RunOptions, fields)
    data = await upload.read()
    return options, data, upload.filename


def _validated(model: type[RunOptions], body: object) -> RunOptions:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestRefused(400, *validation_sentence(exc)) from None


def validation_sentence(exc: ValidationError) -> tuple[str, str | None]:
    """The first problem of a request body, naming its field."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or None
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "this field is not an option of this endpoint"
    elif error["type"] == "missing":
        message = "this field is required"
    return (f"{field}: {message}." if field else f"{message}."), field
