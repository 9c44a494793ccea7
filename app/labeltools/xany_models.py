"""X-AnyLabeling's remote-server protocol: the model list, and what a predict asks for.

X-AnyLabeling (``anylabeling/services/auto_labeling/remote_server.py``) talks to
X-AnyLabeling-Server: ``GET {server}/v1/models`` answers ``{"success": true, "data":
{model_id: {display_name, widgets, params, capabilities, batch_processing_mode}}}`` and
``POST {server}/v1/predict`` sends ``{"model": id, "image": "data:…;base64,…", "params":
{"text_prompt": …, "conf_threshold": …, …}}``, with the API key in a ``Token:`` header.
The image is decoded and checked as every request image of the server is
(``app.server.served_images``).
PaliDesk offers one "model" per task preset of the window (caption short / COCO-style /
detailed, OCR, ask, generate a question, detect, segment, custom prompt), all run by the
one loaded PaliGemma. Presets that need text (classes, a question…) show X-AnyLabeling's
text box (``edit_text`` + ``button_send``, batch mode ``text_prompt``); the others a Run
button.

The preset list is the window's (``app.tasks.presets``), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from app.errors import TaskError
from app.labeltools.errors import LabelToolError
from app.tasks.languages import DEFAULT_LANGUAGE
from app.tasks.presets import PRESETS as TASK_PRESETS
from app.tasks.presets import TaskPreset
from app.tasks.prompts import CaptionStyle, TaskRequest, build_prompt

MODEL_PREFIX = "palidesk-"
TEXT_PROMPT = "text_prompt"
MAX_TEXT_CHARS = 4000  # a question or a class list; far more is no prompt PaliGemma takes


@dataclass(frozen=True)
class XAnyPreset(TaskPreset):
    """One of the window's task presets as an X-AnyLabeling model: the preset itself
    (``field`` is the TaskRequest field the text box fills, None: no text) and ``hint``,
    what X-AnyLabeling's text box asks for."""

    hint: str = ""

    @property
    def model_id(self) -> str:
        return MODEL_PREFIX + self.key


# What X-AnyLabeling's text box asks for, per preset that needs text.
_HINTS = {
    "ask": "Type a question about the image",
    "question": "Type the answer the question should lead to",
    "detect": "Objects to find, e.g. cat; dog (or cat, dog)",
    "segment": "Objects to outline, e.g. cat; dog (or cat, dog)",
    "custom": "Sent to the model exactly as typed",
}
# The window's task list (app.tasks.presets), one X-AnyLabeling model each.
PRESETS: tuple[XAnyPreset, ...] = tuple(
    XAnyPreset(**{f.name: getattr(p, f.name) for f in fields(p)}, hint=_HINTS.get(p.key, ""))
    for p in TASK_PRESETS)
_BY_ID = {preset.model_id: preset for preset in PRESETS}


def list_models(model_label: str) -> dict[str, dict[str, Any]]:
    """The ``data`` of ``GET /v1/models``: one entry per preset, keyed by model id.

    ``model_label`` (the loaded model and quantization, e.g. ``paligemma2-3b-mix-448
    Q4_K_M``) is shown in each display name, so the user sees what answers.
    """
    return {preset.model_id: _metadata(preset, model_label) for preset in PRESETS}


def models_response(model_label: str) -> dict[str, Any]:
    """The whole ``GET /v1/models`` answer, ``{"success": true, "data": …}``."""
    return {"success": True, "data": list_models(model_label)}


def health_response(models_loaded: int) -> dict[str, Any]:
    """``GET /health`` as X-AnyLabeling-Server answers it."""
    return {"status": "healthy" if models_loaded else "loading",
            "models_loaded": models_loaded,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


def is_model(model_id: object) -> bool:
    """Whether ``model_id`` is one of the models ``/v1/models`` lists."""
    return isinstance(model_id, str) and model_id in _BY_ID


def model_info(model_id: str, model_label: str) -> dict[str, Any]:
    """The ``data`` of ``GET /v1/models/{model_id}/info``. Raises ``LabelToolError``."""
    return {"model_id": model_id, **_metadata(_preset(model_id), model_label)}


def request_for_predict(model_id: str, params: Mapping[str, Any] | None) -> TaskRequest:
    """The PaliDesk task a ``POST /v1/predict`` asks for.

    ``params["text_prompt"]`` fills the preset's text (classes split at ``;``, ``,`` or
    ``.``, as X-AnyLabeling's grounding models take them); ``params["lang"]`` picks the
    language of captions and questions (English by default). Other params X-AnyLabeling
    sends (``conf_threshold``, ``iou_threshold``, ``epsilon_factor``…) have no PaliGemma
    meaning and are ignored. Raises ``LabelToolError`` for an unknown model id or missing
    text, ``TaskError`` for text PaliGemma's prompt cannot take.
    """
    preset = _preset(model_id)
    values = params or {}
    if not isinstance(values, Mapping):
        raise LabelToolError('"params" must be a JSON object.')
    lang = values.get("lang", DEFAULT_LANGUAGE)
    if not isinstance(lang, str):
        raise TaskError('"lang" must be a language code such as "en".')
    request = TaskRequest(preset.kind, lang=lang,
                          caption_style=preset.caption_style or CaptionStyle.CAPTION)
    if preset.field is not None:
        text = values.get(TEXT_PROMPT)
        if not isinstance(text, str) or not text.strip():
            raise LabelToolError(f"{preset.label} needs text: {preset.hint.lower()}, then "
                                 "press Send.")
        if len(text) > MAX_TEXT_CHARS:
            raise LabelToolError(f"The text is {len(text):,} characters long; PaliDesk "
                                 f"takes up to {MAX_TEXT_CHARS:,}.")
        request = _with_text(request, preset.field, text)
    build_prompt(request)  # raises TaskError with the sentence for a bad request
    return request


def _preset(model_id: str) -> XAnyPreset:
    preset = _BY_ID.get(model_id)
    if preset is None:
        known = ", ".join(_BY_ID)
        raise LabelToolError(f'There is no model "{model_id}" here; PaliDesk offers: {known}.')
    return preset


def _with_text(request: TaskRequest, field: str, text: str) -> TaskRequest:
    if field == "classes":
        names = tuple(dict.fromkeys(n.strip() for n in re.split(r"[;,.]", text) if n.strip()))
        return replace(request, classes=names)
    return replace(request, **{field: text.strip() if field != "prompt" else text})


def _metadata(preset: XAnyPreset, model_label: str) -> dict[str, Any]:
    # The widget names and batch modes are X-AnyLabeling-Server's (configs/auto_labeling).
    if preset.field is not None:
        widgets: list[dict[str, Any]] = [
            {"name": "edit_text", "value": None},
            {"name": "button_send", "value": None},
        ]
        mode = "text_prompt"
    else:
        widgets = [{"name": "button_run", "value": None}]
        mode = "default"
    widgets.append({"name": "toggle_preserve_existing_annotations", "value": False})
    return {
        "display_name": f"PaliDesk · {preset.label} ({model_label})",
        "widgets": widgets,
        "params": {},
        "capabilities": {},
        "batch_processing_mode": mode,
        "description": preset.hint,
    }
