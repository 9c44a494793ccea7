"""Tasks: prompts for PaliGemma 2 mix checkpoints and parsing of what the model writes."""

from app.tasks.languages import DEFAULT_LANGUAGE, LANGUAGES, check_language
from app.tasks.parsing import (
    DetectedObject,
    IncrementalObjectParser,
    loc_to_box,
    parse_objects,
)
from app.tasks.prompts import CaptionStyle, TaskKind, TaskRequest, build_prompt, parse_classes

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "CaptionStyle",
    "DetectedObject",
    "IncrementalObjectParser",
    "TaskKind",
    "TaskRequest",
    "build_prompt",
    "check_language",
    "loc_to_box",
    "parse_classes",
    "parse_objects",
]
