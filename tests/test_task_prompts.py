"""Prompts sent to PaliGemma 2 mix checkpoints, and the messages users see for bad input."""

from __future__ import annotations

import pytest

from app.errors import TaskError
from app.tasks import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    CaptionStyle,
    TaskKind,
    TaskRequest,
    build_prompt,
    check_language,
    parse_classes,
)

CODES = [
    "ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he", "hi", "hr",
    "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl", "pt", "ro", "ru", "sv", "sw", "te",
    "th", "tr", "uk", "vi", "zh",
]  # fmt: skip


def _error(request: TaskRequest) -> str:
    with pytest.raises(TaskError) as caught:
        build_prompt(request)
    message = str(caught.value)
    assert message.endswith("."), "messages are full sentences for the user"
    return message


# Languages


def test_language_menu_lists_all_35_codes_in_model_card_order() -> None:
    assert list(LANGUAGES) == CODES
    assert len(LANGUAGES) == 35
    assert all(name for name in LANGUAGES.values())


def test_language_names_are_readable() -> None:
    assert LANGUAGES["fil"] == "Filipino"
    assert LANGUAGES["mi"] == "Māori"
    assert LANGUAGES["no"] == "Norwegian"
    assert LANGUAGES["zh"] == "Chinese"
    assert LANGUAGES[DEFAULT_LANGUAGE] == "English"


def test_language_table_cannot_be_changed_by_callers() -> None:
    with pytest.raises(TypeError):
        LANGUAGES["xx"] = "Klingon"  # type: ignore[index]


def test_check_language_accepts_sloppy_case_and_spaces() -> None:
    assert check_language(" FIL ") == "fil"
    assert check_language("De") == "de"


@pytest.mark.parametrize("code", ["xx", "", "english", "en-US"])
def test_unknown_language_names_the_code_and_lists_valid_ones(code: str) -> None:
    with pytest.raises(TaskError) as caught:
        check_language(code)
    message = str(caught.value)
    assert f'"{code}"' in message
    assert "ar, bn, cs" in message and message.endswith("zh.")


# Prompts


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (CaptionStyle.CAP, "cap en"),
        (CaptionStyle.CAPTION, "caption en"),
        (CaptionStyle.DESCRIBE, "describe en"),
    ],
)
def test_caption_prompt_per_style(style: CaptionStyle, expected: str) -> None:
    assert build_prompt(TaskRequest(TaskKind.CAPTION, caption_style=style)) == expected


def test_caption_defaults_to_coco_style_in_english() -> None:
    assert build_prompt(TaskRequest(TaskKind.CAPTION)) == "caption en"


def test_caption_in_another_language_normalizes_the_code() -> None:
    assert build_prompt(TaskRequest(TaskKind.CAPTION, lang=" FIL")) == "caption fil"


def test_ocr_prompt_has_no_language() -> None:
    assert build_prompt(TaskRequest(TaskKind.OCR, lang="de")) == "ocr"


def test_ask_prompt_trims_the_question() -> None:
    request = TaskRequest(TaskKind.ASK, lang="es", question="  ¿Qué hay en la mesa?  ")
    assert build_prompt(request) == "answer es ¿Qué hay en la mesa?"


def test_question_generation_prompt() -> None:
    request = TaskRequest(TaskKind.QUESTION, lang="en", answer="a red bicycle")
    assert build_prompt(request) == "question en a red bicycle"


def test_detect_prompt_joins_classes_with_spaced_semicolons() -> None:
    request = TaskRequest(TaskKind.DETECT, classes=("cat", "dog", "traffic light"))
    assert build_prompt(request) == "detect cat ; dog ; traffic light"


def test_segment_prompt() -> None:
    assert build_prompt(TaskRequest(TaskKind.SEGMENT, classes=("car",))) == "segment car"


def test_class_list_is_cleaned_before_sending() -> None:
    request = TaskRequest(TaskKind.DETECT, classes=(" cat ", "", "dog; bird", "cat"))
    assert build_prompt(request) == "detect cat ; dog ; bird"


def test_spatial_prompts_ignore_the_language() -> None:
    request = TaskRequest(TaskKind.DETECT, lang="not-a-language", classes=("cat",))
    assert build_prompt(request) == "detect cat"


def test_custom_prompt_is_sent_verbatim() -> None:
    prompt = "  caption  en  "
    assert build_prompt(TaskRequest(TaskKind.CUSTOM, prompt=prompt)) == prompt


def test_task_kind_accepts_its_string_value() -> None:
    assert build_prompt(TaskRequest(TaskKind("ocr"))) == "ocr"
    assert TaskKind.DETECT == "detect"


def test_only_detect_and_segment_are_spatial() -> None:
    assert {kind for kind in TaskKind if kind.is_spatial} == {TaskKind.DETECT, TaskKind.SEGMENT}


# parse_classes


def test_parse_classes_splits_trims_and_drops_empties() -> None:
    assert parse_classes("cat; dog ;; bird") == ("cat", "dog", "bird")


def test_parse_classes_keeps_first_of_repeats_in_order() -> None:
    assert parse_classes("dog;cat; dog ;cat;ant") == ("dog", "cat", "ant")


def test_parse_classes_keeps_multi_word_names() -> None:
    assert parse_classes(" traffic light ;stop sign") == ("traffic light", "stop sign")


@pytest.mark.parametrize("text", ["", "   ", ";;", " ; ; "])
def test_parse_classes_of_nothing_is_empty(text: str) -> None:
    assert parse_classes(text) == ()


# Validation messages


@pytest.mark.parametrize("question", [None, "", "   "])
def test_ask_without_a_question_is_refused(question: str | None) -> None:
    assert "needs a question" in _error(TaskRequest(TaskKind.ASK, question=question))


@pytest.mark.parametrize("answer", [None, "", " \t "])
def test_question_generation_without_an_answer_is_refused(answer: str | None) -> None:
    message = _error(TaskRequest(TaskKind.QUESTION, answer=answer))
    assert "needs the answer" in message


@pytest.mark.parametrize(
    ("kind", "word"), [(TaskKind.DETECT, "Detection"), (TaskKind.SEGMENT, "Segmentation")]
)
@pytest.mark.parametrize("classes", [(), ("",), (" ", ";")])
def test_spatial_task_without_classes_is_refused(
    kind: TaskKind, word: str, classes: tuple[str, ...]
) -> None:
    message = _error(TaskRequest(kind, classes=classes))
    assert message.startswith(f"{word} needs at least one object name")


@pytest.mark.parametrize("prompt", [None, "", "  "])
def test_custom_without_a_prompt_is_refused(prompt: str | None) -> None:
    assert "needs a prompt" in _error(TaskRequest(TaskKind.CUSTOM, prompt=prompt))


@pytest.mark.parametrize(
    ("request_", "what"),
    [
        (TaskRequest(TaskKind.ASK, question="What is\nthis?"), "question"),
        (TaskRequest(TaskKind.QUESTION, answer="a\ncat"), "answer text"),
        (TaskRequest(TaskKind.CUSTOM, prompt="caption en\n"), "prompt"),
        (TaskRequest(TaskKind.DETECT, classes=("cat", "big\ndog")), "object name"),
    ],
)
def test_line_breaks_are_refused_with_the_reason(request_: TaskRequest, what: str) -> None:
    message = _error(request_)
    assert f"The {what} contains a line break" in message
    assert "only up to its first line break" in message


def test_trailing_newline_of_a_question_is_harmless() -> None:
    request = TaskRequest(TaskKind.ASK, question="What colour is the car?\n")
    assert build_prompt(request) == "answer en What colour is the car?"


@pytest.mark.parametrize("kind", [TaskKind.CAPTION, TaskKind.ASK, TaskKind.QUESTION])
def test_bad_language_is_refused_for_tasks_that_use_one(kind: TaskKind) -> None:
    request = TaskRequest(kind, lang="klingon", question="why?", answer="because")
    assert 'language code "klingon"' in _error(request)


def test_unknown_task_kind_is_refused() -> None:
    message = _error(TaskRequest("translate"))  # type: ignore[arg-type]
    assert 'no task called "translate"' in message
    assert "caption, ocr, ask, question, detect, segment, custom" in message


def test_unknown_caption_style_is_refused() -> None:
    message = _error(TaskRequest(TaskKind.CAPTION, caption_style="poem"))  # type: ignore[arg-type]
    assert 'no caption style called "poem"' in message
