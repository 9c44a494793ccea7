"""OpenAI-compatible chat: ``POST /v1/chat/completions`` with one user message holding
the PaliGemma prompt as text and one image; streamed as server-sent events on request.

PaliGemma answers one prompt about one image, so what a chat model could take but
PaliGemma cannot (several images, earlier turns, a system prompt, tools) is refused with
a sentence saying what it accepts, rather than silently dropped.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from app.engine.events import GenerationOptions
from app.errors import PaliDeskError
from app.history.history_record import HistoryRecord
from app.server.engine_host import (
    LoadedModel,
    ServedToken,
    answer_text,
    request_from_prompt,
)
from app.server.job_stream import Dropped, JobStream
from app.server.native_api import state_of, validation_sentence
from app.server.request_errors import RequestRefused
from app.server.schemas import ChatMessage, ChatRequest, ImageURL
from app.server.served_images import checked_image, image_bytes
from app.session.job import JobOutcome

router = APIRouter()

ACCEPTS = ("PaliGemma answers one user message holding the task as text ('caption en', "
           "'detect cat ; dog', 'segment car', 'answer en what is this?') and one image")


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
    state = state_of(request)
    try:
        body = json.loads(await request.body())
        chat = ChatRequest.model_validate(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting past ~1,000
        if isinstance(exc, ValidationError):
            raise RequestRefused(400, *validation_sentence(exc)) from None
        raise RequestRefused(400, "The body is not valid JSON.") from None
    model = state.require_model(chat.model)
    if chat.tools or chat.functions or chat.tool_choice not in (None, "none"):
        raise RequestRefused(400, f"PaliGemma does not call tools. {ACCEPTS}.", "tools")
    prompt, image = _prompt_and_image(chat.messages)
    data = image_bytes(image, "messages.image_url")
    suffix = await checked_image(data, "messages.image_url")
    try:
        task = request_from_prompt(prompt)
        options = GenerationOptions(
            max_new_tokens=chat.max_completion_tokens or chat.max_tokens or 128,
            temperature=chat.temperature or 0.0, top_p=chat.top_p or 1.0,
            # No seed: a new random one, as OpenAI's samples differ from call to call
            # (greedy decoding, the default, ignores it).
            seed=chat.seed if chat.seed is not None else -1)
    except PaliDeskError as exc:
        raise RequestRefused(400, str(exc), "messages") from None
    job = state.make_job(data, suffix, task, options)
    stream = JobStream(state, job)
    answer = _Answer(model)
    if chat.stream:
        usage = chat.stream_options is not None and chat.stream_options.include_usage
        return StreamingResponse(_sse(stream, answer, usage), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})
    async for event in stream.events(request.is_disconnected):
        if isinstance(event, Dropped):
            raise RequestRefused(503, "The server shut down before this request ran.")
        if isinstance(event, JobOutcome):
            return JSONResponse(answer.completion(_record(event)))
    return JSONResponse({}, status_code=499)  # the client left; nobody reads this


def _prompt_and_image(messages: list[ChatMessage]) -> tuple[str, str]:
    users = []
    for index, message in enumerate(messages):
        if message.role in ("system", "developer"):
            if _text_of(message).strip():
                raise RequestRefused(
                    400, f"PaliGemma has no system prompt: put the task in the user "
                         f"message. {ACCEPTS}.", f"messages.{index}")
        elif message.role == "user":
            users.append(message)
        else:
            raise RequestRefused(
                400, f"PaliGemma keeps no conversation: send no {message.role} turns. "
                     f"{ACCEPTS}.", f"messages.{index}")
    if len(users) != 1:
        raise RequestRefused(400, f"{ACCEPTS}; this request has {len(users)} user messages.",
                             "messages")
    parts = users[0].content
    if isinstance(parts, str) or parts is None:
        raise RequestRefused(400, f"{ACCEPTS}; this message has no image.", "messages")
    images = [p.image_url for p in parts if p.type == "image_url"]
    text = " ".join((p.text or "").strip() for p in parts if p.type == "text").strip()
    if len(images) != 1 or images[0] is None:
        raise RequestRefused(400, f"{ACCEPTS}; this message has {len(images)} images.",
                             "messages")
    if not text:
        raise RequestRefused(400, f"{ACCEPTS}; this message has no text.", "messages")
    image = images[0]
    return text, image.url if isinstance(image, ImageURL) else image


def _text_of(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return " ".join(p.text or "" for p in message.content or [] if p.type == "text")


def _record(outcome: JobOutcome) -> HistoryRecord:
    if outcome.record is None:
        raise RequestRefused(500, outcome.message or "The task failed.")
    return outcome.record


class _Answer:
    """One completion's id, time and text as it streams."""

    def __init__(self, model: LoadedModel) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model.model_id
        self.fingerprint = model.version

    def _head(self, kind: str) -> dict[str, object]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": self.fingerprint}

    def completion(self, record: HistoryRecord) -> dict[str, object]:
        return {**self._head("chat.completion"),
                "choices": [{"index": 0, "logprobs": None,
                             "finish_reason": finish_reason(record),
                             "message": {"role": "assistant", "content": answer_text(record)}}],
                "usage": usage(record), **extras(record)}

    def chunk(self, delta: dict[str, object], finish: str | None = None,
              **more: object) -> str:
        body = {**self._head("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}], **more}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def _sse(stream: JobStream, answer: _Answer, include_usage: bool) -> AsyncIterator[str]:
    # A client that disconnects makes Starlette cancel this generator: JobStream's
    # finally then cancels the job.
    yield answer.chunk({"role": "assistant", "content": ""})
    async for event in stream.events():
        if isinstance(event, ServedToken) and event.text:
            yield answer.chunk({"content": event.text})
        elif isinstance(event, Dropped):
            yield _sse_error("The server shut down before this request ran.")
            return
        elif isinstance(event, JobOutcome):
            if event.record is None:
                yield _sse_error(event.message or "The task failed.")
                return
            yield answer.chunk({}, finish_reason(event.record), **extras(event.record))
            if include_usage:
                body = {**answer._head("chat.completion.chunk"), "choices": [],
                        "usage": usage(event.record)}
                yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def _sse_error(message: str) -> str:
    return f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n"


def finish_reason(record: HistoryRecord) -> str:
    return "length" if record.stop_reason == "max_tokens" else "stop"


def usage(record: HistoryRecord) -> dict[str, int]:
    prompt_tokens = int(record.timings.get("prefix_tokens", 0))
    return {"prompt_tokens": prompt_tokens, "completion_tokens": len(record.tokens),
            "total_tokens": prompt_tokens + len(record.tokens)}


def extras(record: HistoryRecord) -> dict[str, object]:
    """PaliDesk's fields, which OpenAI clients ignore: timings, and for detect and segment
    the parsed objects (pixel boxes of the original image, labels, COCO RLE masks)."""
    return {"timings": dict(record.timings),
            "palidesk": {"task": record.task, "prompt": record.prompt,
                         "image_size": [record.image_width, record.image_height],
                         "stop_reason": record.stop_reason, "record_id": record.id,
                         "objects": [obj.to_dict() for obj in record.objects]}}
