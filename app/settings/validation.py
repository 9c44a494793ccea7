"""Turning a loaded JSON dict into ``Settings``: wrong types and out-of-range values
fall back field by field, each with a note for the user, so one bad value never costs
the rest of the settings."""

from __future__ import annotations

import base64
import binascii
import math
import types
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any, Union, get_args, get_origin, get_type_hints

from app.engine.limits import MAX_NEW_TOKENS
from app.settings.settings import SCHEMA_VERSION, Settings
from app.tasks.languages import LANGUAGES
from app.tasks.prompts import CaptionStyle, TaskKind

_HINTS: dict[str, Any] = get_type_hints(Settings)


def settings_from_dict(data: Mapping[str, object]) -> tuple[Settings, list[str]]:
    """Return the settings ``data`` describes and a note per field that was not usable.

    Unknown keys are ignored; a missing field takes its default silently.
    """
    defaults = Settings()
    values: dict[str, object] = {}
    problems: list[str] = []
    for spec in fields(Settings):
        if spec.name == "schema_version" or spec.name not in data:
            continue
        value = data[spec.name]
        hint = _HINTS[spec.name]
        if _fits(value, hint):
            values[spec.name] = _normalized(value, hint)
        else:
            default = getattr(defaults, spec.name)
            problems.append(f"{spec.name} (expected {_describe(hint)}; using {_shown(default)})")
    settings = replace(defaults, **values)
    for name, check in _RANGE_CHECKS.items():
        fixed, reason = check(getattr(settings, name))
        if reason is not None:
            settings = replace(settings, **{name: fixed})
            problems.append(f"{name} ({reason}; using {_shown(fixed)})")
    settings.schema_version = SCHEMA_VERSION
    return settings, problems


def _fits(value: object, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):  # JSON true is not a number, even though bool is an int
        return hint is bool
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(value, hint)


def _normalized(value: object, hint: Any) -> object:
    if hint is float and isinstance(value, int):
        return float(value)  # JSON writes 1.0 as 1 in some editors
    return value


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        named = [_describe(option) for option in get_args(hint) if option is not type(None)]
        return " or ".join(named) + " or empty"
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(
        hint, str(hint)
    )


def _shown(value: object) -> str:
    if value is None:
        return "automatic"
    return repr(value)


Check = Callable[[Any], tuple[Any, str | None]]


def _max_new_tokens(value: int) -> tuple[int, str | None]:
    if value < 1:
        return 1, f"{value} is below 1"
    if value > MAX_NEW_TOKENS:
        return MAX_NEW_TOKENS, f"{value} is above {MAX_NEW_TOKENS}"
    return value, None


def _at_least_one_or_auto(value: int | None) -> tuple[int | None, str | None]:
    # Zero or a negative count most likely meant "let PaliDesk decide".
    if value is not None and value < 1:
        return None, f"{value} is below 1"
    return value, None


def _not_negative_or_auto(value: int | None) -> tuple[int | None, str | None]:
    if value is not None and value < 0:  # older files wrote -1 for "as many as fit"
        return None, f"{value} is negative"
    return value, None


def _temperature(value: float) -> tuple[float, str | None]:
    if not math.isfinite(value):
        return 0.0, f"{value} is not a finite number"
    if value < 0:
        return 0.0, f"{value} is below 0"
    return value, None


def _top_k(value: int) -> tuple[int, str | None]:
    if value < 0:
        return 0, f"{value} is below 0"
    return value, None


def _top_p(value: float) -> tuple[float, str | None]:
    if not math.isfinite(value) or value <= 0:
        # Nothing near 0 is a sensible clamp (it would keep a single token), so reset.
        return 1.0, f"{value} is not above 0"
    if value > 1:
        return 1.0, f"{value} is above 1"
    return value, None


def _one_of(choices: tuple[str, ...], default: str) -> Check:
    def check(value: str) -> tuple[str, str | None]:
        if value in choices:
            return value, None
        return default, f'"{value}" is not one of {", ".join(choices)}'

    return check


def _language(value: str) -> tuple[str, str | None]:
    if value in LANGUAGES:
        return value, None
    return "en", f'"{value}" is not a language PaliGemma knows'


def _models_dir(value: str) -> tuple[str, str | None]:
    if value.strip():
        return value, None
    return Settings().models_dir, "it is empty"


def _base64_or_none(value: str | None) -> tuple[str | None, str | None]:
    # The window decodes these with base64.b64decode; a value it cannot decode would stop
    # the window from opening at every start, so it is dropped here instead.
    if value is None:
        return None, None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None, "it is not a saved window layout"
    return value, None


_RANGE_CHECKS: dict[str, Check] = {
    "models_dir": _models_dir,
    "max_new_tokens": _max_new_tokens,
    "threads": _at_least_one_or_auto,
    "gpu_layers": _not_negative_or_auto,
    "temperature": _temperature,
    "top_k": _top_k,
    "top_p": _top_p,
    "language": _language,
    "last_task": _one_of(tuple(kind.value for kind in TaskKind), TaskKind.CAPTION.value),
    "caption_style": _one_of(
        tuple(style.value for style in CaptionStyle), CaptionStyle.CAPTION.value
    ),
    "window_geometry": _base64_or_none,
    "window_state": _base64_or_none,
}
