"""What the user asks for, and the exact prompt text the mix checkpoints expect."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from app.errors import TaskError
from app.tasks.languages import DEFAULT_LANGUAGE, check_language


class TaskKind(StrEnum):
    """The jobs PaliGemma 2 mix checkpoints were trained for, plus a free prompt."""

    CAPTION = "caption"
    OCR = "ocr"
    ASK = "ask"
    QUESTION = "question"
    DETECT = "detect"
    SEGMENT = "segment"
    CUSTOM = "custom"

    @property
    def is_spatial(self) -> bool:
        """True for tasks whose output is objects in the image rather than text."""
        return self in (TaskKind.DETECT, TaskKind.SEGMENT)


class CaptionStyle(StrEnum):
    """How long a caption should be; the value is the prompt's first word."""

    CAP = "cap"  # short, a few words
    CAPTION = "caption"  # one COCO-style sentence
    DESCRIBE = "describe"  # a detailed paragraph


@dataclass(frozen=True)
class TaskRequest:
    """One task to run on an image; ``build_prompt`` checks it and turns it into text."""

    kind: TaskKind
    lang: str = DEFAULT_LANGUAGE
    caption_style: CaptionStyle = CaptionStyle.CAPTION
    question: str | None = None
    answer: str | None = None
    classes: tuple[str, ...] = ()
    prompt: str | None = None


def parse_classes(text: str) -> tuple[str, ...]:
    """Split ``"cat; dog ;; bird"`` into ``("cat", "dog", "bird")``.

    Names are trimmed, empty ones dropped, and repeats kept only once, in first-seen order.
    """
    names = (name.strip() for name in text.split(";"))
    return tuple(dict.fromkeys(name for name in names if name))


def build_prompt(request: TaskRequest) -> str:
    """Return the prompt text for ``request``, exactly as the mix checkpoints expect it.

    Raises ``TaskError`` when the request lacks what its task needs (a question, an
    answer, object names, a prompt), holds a line break, or names an unknown language.
    """
    kind = _as_enum(TaskKind, request.kind, "task")
    if kind is TaskKind.CAPTION:
        style = _as_enum(CaptionStyle, request.caption_style, "caption style")
        return f"{style.value} {check_language(request.lang)}"
    if kind is TaskKind.OCR:
        return "ocr"
    if kind is TaskKind.ASK:
        question = _one_line(request.question, "question")
        if not question:
            raise TaskError("Asking about an image needs a question; type one and try again.")
        return f"answer {check_language(request.lang)} {question}"
    if kind is TaskKind.QUESTION:
        answer = _one_line(request.answer, "answer text")
        if not answer:
            raise TaskError(
                "Writing a question needs the answer it should lead to; "
                "type that answer and try again."
            )
        return f"question {check_language(request.lang)} {answer}"
    if kind.is_spatial:
        return f"{kind.value} {' ; '.join(_checked_classes(request.classes, kind))}"
    return _custom_prompt(request.prompt)


def _custom_prompt(prompt: str | None) -> str:
    if prompt is None or not prompt.strip():
        raise TaskError("A custom task needs a prompt; type the text to send to the model.")
    _reject_line_break(prompt, "prompt")
    # Sent verbatim: whoever writes a custom prompt may mean its exact spacing.
    return prompt


def _checked_classes(classes: tuple[str, ...] | str, kind: TaskKind) -> tuple[str, ...]:
    # Re-splitting the joined names also catches one name that holds "a; b".
    joined = classes if isinstance(classes, str) else ";".join(classes)
    names = parse_classes(joined)
    if not names:
        what = "Detection" if kind is TaskKind.DETECT else "Segmentation"
        raise TaskError(f"{what} needs at least one object name to look for, such as: cat; dog.")
    for name in names:
        _reject_line_break(name, "object name")
    return names


def _one_line(text: str | None, what: str) -> str:
    stripped = (text or "").strip()
    _reject_line_break(stripped, what)
    return stripped


def _reject_line_break(text: str, what: str) -> None:
    # The model's prompt ends at the first "\n": whatever follows would be read as output.
    if "\n" in text:
        raise TaskError(
            f"The {what} contains a line break, but PaliGemma reads a prompt only up to "
            f"its first line break; write it on one line."
        )


_Choice = TypeVar("_Choice", TaskKind, CaptionStyle)


def _as_enum(choices: type[_Choice], value: object, what: str) -> _Choice:
    try:
        return choices(value)
    except ValueError:
        valid = ", ".join(member.value for member in choices)
        raise TaskError(f'There is no {what} called "{value}"; use one of: {valid}.') from None
