"""The languages PaliGemma 2 mix checkpoints caption and answer in."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from app.errors import TaskError

# Read-only so no caller can add a code the model was never trained on; the order is the
# model card's (alphabetical by code), which keeps menus predictable.
LANGUAGES: Mapping[str, str] = MappingProxyType(
    {
        "ar": "Arabic",
        "bn": "Bengali",
        "cs": "Czech",
        "da": "Danish",
        "de": "German",
        "el": "Greek",
        "en": "English",
        "es": "Spanish",
        "fa": "Persian",
        "fi": "Finnish",
        "fil": "Filipino",
        "fr": "French",
        "he": "Hebrew",
        "hi": "Hindi",
        "hr": "Croatian",
        "hu": "Hungarian",
        "id": "Indonesian",
        "it": "Italian",
        "ja": "Japanese",
        "ko": "Korean",
        "mi": "Māori",
        "nl": "Dutch",
        "no": "Norwegian",
        "pl": "Polish",
        "pt": "Portuguese",
        "ro": "Romanian",
        "ru": "Russian",
        "sv": "Swedish",
        "sw": "Swahili",
        "te": "Telugu",
        "th": "Thai",
        "tr": "Turkish",
        "uk": "Ukrainian",
        "vi": "Vietnamese",
        "zh": "Chinese",
    }
)

DEFAULT_LANGUAGE = "en"


def check_language(code: str) -> str:
    """Return ``code`` trimmed and lower-cased if PaliGemma knows that language.

    Raises ``TaskError`` naming the unknown code and listing the valid ones.
    """
    normalized = code.strip().lower() if isinstance(code, str) else ""
    if normalized not in LANGUAGES:
        valid = ", ".join(LANGUAGES)
        raise TaskError(f'PaliGemma does not know the language code "{code}"; use one of: {valid}.')
    return normalized
