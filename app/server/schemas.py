"""The request bodies, as pydantic models: every number range-checked (NaN and infinity
refused), unknown fields of PaliDesk's own endpoints refused, each limit the same as
`palidesk run`'s (``app.engine.limits``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.engine.limits import MAX_NEW_TOKENS, MAX_SEED, MAX_TEMPERATURE, MAX_TOP_K
from app.tasks import CaptionStyle, TaskKind

TaskName = Literal[tuple(k.value for k in TaskKind)]  # type: ignore[valid-type]
StyleName = Literal[tuple(s.value for s in CaptionStyle)]  # type: ignore[valid-type]
MaxTokens = Annotated[int, Field(ge=1, le=MAX_NEW_TOKENS, strict=False)]
Temperature = Annotated[float, Field(ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
TopK = Annotated[int, Field(ge=0, le=MAX_TOP_K)]
Seed = Annotated[int, Field(ge=-1, le=MAX_SEED)]
ShortText = Annotated[str, Field(max_length=4000)]


class RunOptions(BaseModel):
    """`palidesk run`'s task options (``--task``, ``--prompt``, ``--lang``, …) by the
    same names with ``_`` for ``-``; the engine's own settings (threads, GPU layers) are
    the server's, not a request's."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    task: TaskName
    prompt: ShortText | None = None
    lang: Annotated[str, Field(max_length=16)] = "en"
    caption_style: StyleName = CaptionStyle.CAPTION.value
    classes: ShortText = ""
    max_tokens: MaxTokens = 128
    temperature: Temperature = 0.0
    top_k: TopK = 0
    top_p: TopP = 1.0
    seed: Seed = 0
    model: Annotated[str, Field(max_length=200)] | None = None  # must name the served one


class RunRequest(RunOptions):
    """``POST /v1/run`` as JSON: the options and the image (base64 or a data: URI)."""

    image: str
    image_name: Annotated[str, Field(max_length=255)] | None = None


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat request; fields PaliGemma has no use for are ignored, as LM Studio and
    Ollama do, except those that would change the answer's meaning (see ``chat_api``)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: Annotated[str, Field(max_length=200)] = ""
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=64)]
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    seed: Seed | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
