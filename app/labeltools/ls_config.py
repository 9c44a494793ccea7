"""What a Label Studio project's labelling config asks PaliDesk to do.

Label Studio sends the project's config (XML) with every ``/predict`` and ``/setup``. The
control tags PaliDesk fills, each becoming one PaliDesk task on the image it points at:

- ``<RectangleLabels>`` → detect, with the config's ``<Label value=…>`` names as classes;
- ``<BrushLabels>`` → segment, with its label names as classes;
- ``<TextArea>`` → a text task chosen by the words of its ``name`` (docs/labeltools.md):
  ``ocr``/``transcription`` → OCR; ``describe``/``description``/``detailed`` → detailed
  caption; ``cap``/``short`` → short caption; ``caption`` → COCO-style caption;
  ``answer``/``vqa`` → answer the question in the task's ``question`` field;
  ``question`` → write a question leading to the task's ``answer`` field. A last word that
  is a language code PaliGemma knows sets the language (``caption_de``); English otherwise.

Every other control (and a TextArea whose name matches none of these, or one filled per
region) is left to the annotator; ``LabelingPlan.ignored`` says why, in a sentence each.

The XML comes from a request, so it is parsed with defusedxml and any DTD is refused: no
entity expansion (the "billion laughs" bomb), no external entities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from app.errors import TaskError
from app.labeltools.errors import LabelConfigError
from app.tasks.languages import DEFAULT_LANGUAGE, LANGUAGES
from app.tasks.prompts import CaptionStyle, TaskKind, TaskRequest, build_prompt

MAX_CONFIG_CHARS = 1_000_000  # Label Studio's own templates are a few kilobytes

RECTANGLE = "rectanglelabels"
BRUSH = "brushlabels"
TEXTAREA = "textarea"

# TextArea name words → task, first match wins (so "ocr_caption" reads text).
_TEXT_TASKS: tuple[tuple[frozenset[str], TaskKind, CaptionStyle | None], ...] = (
    (frozenset({"ocr", "transcription", "transcript"}), TaskKind.OCR, None),
    (frozenset({"describe", "description", "detailed"}), TaskKind.CAPTION, CaptionStyle.DESCRIBE),
    (frozenset({"cap", "short"}), TaskKind.CAPTION, CaptionStyle.CAP),
    (frozenset({"caption", "captions", "captioning"}), TaskKind.CAPTION, CaptionStyle.CAPTION),
    (frozenset({"answer", "vqa"}), TaskKind.ASK, None),
    (frozenset({"question"}), TaskKind.QUESTION, None),
)
# Where an ask / question task finds its text in the task's data.
QUESTION_FIELD = "question"
ANSWER_FIELD = "answer"


@dataclass(frozen=True)
class ImageTag:
    """An ``<Image name=… value="$key">`` tag: ``key`` is the task data field with the URL."""

    name: str
    value_key: str


@dataclass(frozen=True)
class ControlTask:
    """One control tag PaliDesk fills, and the task that fills it.

    ``request`` is complete for detect, segment, caption and OCR; for ask and question its
    text comes from each task's data (``request_for_task``). ``labels`` are the config's
    label names (detect / segment), in config order.
    """

    from_name: str
    to_name: str
    result_type: str  # RECTANGLE, BRUSH or TEXTAREA: the "type" of its results
    image: ImageTag
    request: TaskRequest
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelingPlan:
    """What a labelling config asks for: the controls PaliDesk fills, and why others are not."""

    controls: tuple[ControlTask, ...]
    ignored: tuple[str, ...] = field(default=())


def parse_label_config(xml_text: str) -> LabelingPlan:
    """Read a Label Studio labelling config into the controls PaliDesk can fill.

    Raises ``LabelConfigError`` with a sentence for text that is not XML, holds a DTD or
    entities, is too long, has no ``<Image>``, or has no control PaliDesk can fill.
    """
    root = _parse_xml(xml_text)
    images = {
        tag.get("name", ""): ImageTag(tag.get("name", ""), tag.get("value", "").lstrip("$"))
        for tag in root.iter()
        if tag.tag == "Image" and tag.get("name") and tag.get("value", "").startswith("$")
    }
    if not images:
        raise LabelConfigError(
            'The labelling config has no <Image name="…" value="$…"> tag, and PaliDesk '
            "labels images only."
        )
    controls: list[ControlTask] = []
    ignored: list[str] = []
    for tag in root.iter():
        kind = tag.tag.lower()
        if kind not in (RECTANGLE, BRUSH, TEXTAREA):
            if kind.endswith("labels") or kind in ("choices", "rectangle", "brush", "polygon"):
                ignored.append(f"<{tag.tag} name=\"{tag.get('name', '')}\"> is not one "
                               "PaliDesk fills (it fills RectangleLabels, BrushLabels and "
                               "TextArea).")
            continue
        image = _target_image(tag, images, ignored)
        if image is None:
            continue
        control = _control(tag, kind, image, ignored)
        if control is not None:
            controls.append(control)
    if not controls:
        detail = " ".join(ignored)
        raise LabelConfigError(
            "The labelling config has nothing PaliDesk can fill: add a <RectangleLabels> "
            "(detect), a <BrushLabels> (segment) or a <TextArea> named caption, describe, "
            f"ocr, answer or question, pointing at the <Image>. {detail}".strip()
        )
    return LabelingPlan(tuple(controls), tuple(ignored))


def request_for_task(control: ControlTask, task_data: Mapping[str, Any]) -> TaskRequest:
    """The complete request for one Label Studio task: ask and question take their text
    from the task's ``question`` / ``answer`` field; other controls need nothing more.

    Raises ``LabelConfigError`` when that field is missing or empty, ``TaskError`` when
    the resulting prompt is not one PaliGemma takes (a line break, say).
    """
    request = control.request
    if request.kind in (TaskKind.ASK, TaskKind.QUESTION):
        key = QUESTION_FIELD if request.kind is TaskKind.ASK else ANSWER_FIELD
        text = task_data.get(key)
        if not isinstance(text, str) or not text.strip():
            raise LabelConfigError(
                f'The TextArea "{control.from_name}" asks PaliDesk to '
                f"{'answer a question' if key == QUESTION_FIELD else 'write a question'}, "
                f'but this task has no "{key}" field with text in its data.'
            )
        request = replace(request, **{key: text.strip()})
    build_prompt(request)  # raises TaskError with the sentence for a bad request
    return request


def image_reference(control: ControlTask, task_data: Mapping[str, Any]) -> str:
    """The image URL (or path) the task's data holds for the control's ``<Image>``.

    Raises ``LabelConfigError`` when the task lacks that field.
    """
    value = task_data.get(control.image.value_key)
    if not isinstance(value, str) or not value.strip():
        raise LabelConfigError(
            f'This task has no image in its "{control.image.value_key}" field, which the '
            f'<Image name="{control.image.name}"> tag reads.'
        )
    return value.strip()


def _parse_xml(xml_text: str) -> Element:
    if not isinstance(xml_text, str) or not xml_text.strip():
        raise LabelConfigError("The labelling config is empty; Label Studio sends it as XML.")
    if len(xml_text) > MAX_CONFIG_CHARS:
        raise LabelConfigError(
            f"The labelling config is {len(xml_text):,} characters long; PaliDesk reads "
            f"configs up to {MAX_CONFIG_CHARS:,}."
        )
    try:
        return fromstring(xml_text, forbid_dtd=True, forbid_entities=True,
                          forbid_external=True)
    except DefusedXmlException:
        raise LabelConfigError(
            "The labelling config declares a DTD or entities, which PaliDesk refuses "
            "(they can expand into gigabytes or read files); Label Studio configs need none."
        ) from None
    except ParseError as exc:
        raise LabelConfigError(f"The labelling config is not valid XML: {exc}.") from None


def _target_image(
    tag: Element, images: Mapping[str, ImageTag], ignored: list[str]
) -> ImageTag | None:
    # toName may list several tags; PaliGemma looks at one image, the first one named.
    names = [name.strip() for name in tag.get("toName", "").split(",") if name.strip()]
    for name in names:
        if name in images:
            return images[name]
    ignored.append(f"<{tag.tag} name=\"{tag.get('name', '')}\"> does not point at an "
                   "<Image> (its toName names none), so PaliDesk leaves it.")
    return None


def _control(
    tag: Element, kind: str, image: ImageTag, ignored: list[str]
) -> ControlTask | None:
    name = tag.get("name", "")
    if not name:
        ignored.append(f"A <{tag.tag}> has no name, so its results could not be addressed.")
        return None
    if kind == TEXTAREA:
        request = _text_request(tag, name, ignored)
        if request is None:
            return None
        return ControlTask(name, image.name, TEXTAREA, image, request)
    labels = _labels(tag, ignored)
    if not labels:
        ignored.append(f'<{tag.tag} name="{name}"> has no usable <Label value="…">, so there '
                       "is nothing to look for.")
        return None
    task = TaskKind.DETECT if kind == RECTANGLE else TaskKind.SEGMENT
    request = TaskRequest(task, classes=labels)
    try:
        build_prompt(request)
    except TaskError as exc:
        ignored.append(f'<{tag.tag} name="{name}">: {exc}')
        return None
    return ControlTask(name, image.name, kind, image, request, labels)


def _labels(tag: Element, ignored: list[str]) -> tuple[str, ...]:
    labels: list[str] = []
    for child in tag:
        if child.tag != "Label":
            continue
        value = (child.get("value") or "").strip()
        if not value:
            continue
        # ";" separates classes in PaliGemma's prompt; a line break ends the prompt.
        if ";" in value or "\n" in value:
            ignored.append(f'The label "{value}" holds a ";" or a line break, which '
                           "PaliGemma's prompt cannot carry; PaliDesk does not look for it.")
            continue
        if value not in labels:
            labels.append(value)
    return tuple(labels)


def _text_request(tag: Element, name: str, ignored: list[str]) -> TaskRequest | None:
    if (tag.get("perRegion") or "").strip().lower() == "true":
        ignored.append(f'<TextArea name="{name}"> is filled per region; PaliDesk writes '
                       "text for the whole image only.")
        return None
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    lang = DEFAULT_LANGUAGE
    if len(words) > 1 and words[-1] in LANGUAGES:
        lang = words.pop()
    for keys, task, style in _TEXT_TASKS:
        if keys.intersection(words):
            return TaskRequest(task, lang=lang, caption_style=style or CaptionStyle.CAPTION)
    ignored.append(f'<TextArea name="{name}"> names no PaliDesk task; name it caption, '
                   "describe, cap, ocr, answer or question (optionally ending in a language "
                   "code, e.g. caption_de).")
    return None
