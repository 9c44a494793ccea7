"""The window's task list as data: each preset's task, caption style and the one text it
needs, and the warning for checkpoints a preset does not suit. Qt-free, so the rules have
plain tests and other faces (the server) can offer the same list."""

from __future__ import annotations

from dataclasses import dataclass

from app.tasks.prompts import CaptionStyle, TaskKind


@dataclass(frozen=True)
class TaskPreset:
    """One entry of the task list. ``field`` names the text the preset needs, if any:
    "question", "answer", "classes" or "prompt"."""

    key: str
    label: str
    kind: TaskKind
    caption_style: CaptionStyle | None = None
    field: str | None = None
    field_label: str = ""
    placeholder: str = ""

    @property
    def uses_language(self) -> bool:
        """Whether the prompt names a language (captions, questions and answers do)."""
        return self.kind in (TaskKind.CAPTION, TaskKind.ASK, TaskKind.QUESTION)


PRESETS: tuple[TaskPreset, ...] = (
    TaskPreset("cap", "Caption — short", TaskKind.CAPTION, CaptionStyle.CAP),
    TaskPreset("caption", "Caption — COCO-style", TaskKind.CAPTION, CaptionStyle.CAPTION),
    TaskPreset("describe", "Caption — detailed", TaskKind.CAPTION, CaptionStyle.DESCRIBE),
    TaskPreset("ocr", "Read text (OCR)", TaskKind.OCR),
    TaskPreset(
        "ask", "Ask a question", TaskKind.ASK, field="question",
        field_label="Question:", placeholder="What is the person holding?",
    ),
    TaskPreset(
        "question", "Generate a question", TaskKind.QUESTION, field="answer",
        field_label="Answer:", placeholder="a red umbrella",
    ),
    TaskPreset(
        "detect", "Detect objects", TaskKind.DETECT, field="classes",
        field_label="Objects:", placeholder="cat; dog",
    ),
    TaskPreset(
        "segment", "Segment", TaskKind.SEGMENT, field="classes",
        field_label="Objects:", placeholder="cat; dog",
    ),
    TaskPreset(
        "custom", "Custom prompt", TaskKind.CUSTOM, field="prompt",
        field_label="Prompt:", placeholder="sent to the model exactly as typed",
    ),
)
PRESETS_BY_KEY = {preset.key: preset for preset in PRESETS}

PT_WARNING = (
    "This is a pretrained (pt) checkpoint: it is meant for fine-tuning and answers task "
    "prompts only roughly. For dependable results, load a mix checkpoint "
    "(e.g. paligemma2-3b-mix-448)."
)


def checkpoint_warning(preset: TaskPreset, checkpoint_kind: str) -> str:
    """The sentence to show when ``preset`` does not suit the loaded checkpoint, or ""."""
    if checkpoint_kind.strip().lower() != "pt":
        # A mix checkpoint was trained on every preset; an unknown one gives no grounds
        # for a warning, and one that cried wolf would teach people to ignore it.
        return ""
    if preset.kind is TaskKind.CUSTOM:
        return ""  # a custom prompt is how a pt checkpoint's fine-tuned prefix is used
    return PT_WARNING


def preset_by_key(key: str) -> TaskPreset | None:
    """The preset called ``key`` (see ``PRESETS``), or None."""
    return PRESETS_BY_KEY.get(key)
