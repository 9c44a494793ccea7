"""``palidesk run``'s task options (``--task``, ``--prompt``, ``--lang``,
``--caption-style``, ``--classes``) as a TaskRequest: the one rule for the command line
(run, batch) and the server (``/v1/run`` takes the same options by the same names)."""

from __future__ import annotations

from app.tasks.prompts import CaptionStyle, TaskKind, TaskRequest, build_prompt, parse_classes


def request_from_options(task: str, prompt: str | None = None, lang: str = "en",
                         caption_style: str = CaptionStyle.CAPTION.value,
                         classes: str = "") -> TaskRequest:
    """The request the options ask for: ``prompt`` is the question (ask), the answer
    (question) or the whole prompt (custom); ``classes`` are split at ``;``. Nothing is
    checked beyond the task and style names (ValueError); ``checked_request`` checks all."""
    kind = TaskKind(task)
    return TaskRequest(
        kind=kind,
        lang=lang,
        caption_style=CaptionStyle(caption_style),
        question=prompt if kind == TaskKind.ASK else None,
        answer=prompt if kind == TaskKind.QUESTION else None,
        classes=parse_classes(classes),
        prompt=prompt if kind == TaskKind.CUSTOM else None,
    )


def checked_request(task: str, prompt: str | None = None, lang: str = "en",
                    caption_style: str = CaptionStyle.CAPTION.value,
                    classes: str = "") -> TaskRequest:
    """``request_from_options``, refused now (TaskError in words) when its prompt cannot be
    built: a question missing, a bad language, no classes…"""
    request = request_from_options(task, prompt, lang, caption_style, classes)
    build_prompt(request)
    return request
