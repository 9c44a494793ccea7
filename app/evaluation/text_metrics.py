"""Metrics for text answers: OCR (jiwer), captions (sacrebleu), questions (exact match, ANLS).

Exact match and ANLS have no standard package. Exact match follows the answer
normalisation of the official VQA evaluation, which PaliGemma's VQA evaluators use:
lower case, punctuation dropped (a full stop inside a number kept), number words as
digits, articles dropped, common contractions restored. ANLS (Biten et al., 2019, the
ST-VQA/DocVQA metric): per question, the best over its answers of 1 - normalised
Levenshtein distance, counted as 0 when the distance is 0.5 or more; compared after
lower-casing and trimming, as the DocVQA evaluation does.
"""

from __future__ import annotations

import re

import jiwer
import sacrebleu
from rapidfuzz.distance import Levenshtein

ANLS_THRESHOLD = 0.5

_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
            "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {"arent": "aren't", "cant": "can't", "couldnt": "couldn't",
                 "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hasnt": "hasn't",
                 "havent": "haven't", "isnt": "isn't", "its": "it's", "shouldnt": "shouldn't",
                 "wasnt": "wasn't", "werent": "weren't", "wont": "won't",
                 "wouldnt": "wouldn't", "youre": "you're", "theyre": "they're"}
_PUNCTUATION = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$~|:']")
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def normalize_answer(text: str) -> str:
    """PaliGemma/VQA-style answer normalisation (see the module docstring)."""
    text = text.replace("\n", " ").replace("\t", " ").strip().lower()
    # Commas between digits are thousands separators: "1,000" is "1000".
    text = re.sub(r"(?<=\d),(?=\d)", "", text)
    text = _PUNCTUATION.sub(lambda m: "" if m.group() == "'" else " ", text)
    text = _PERIOD.sub("", text)
    words = []
    for word in text.split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def exact_match(prediction: str, answers: list[str]) -> float:
    """1.0 if the normalised prediction equals any normalised answer, else 0.0."""
    wanted = normalize_answer(prediction)
    return 1.0 if any(normalize_answer(a) == wanted for a in answers) else 0.0


def anls(prediction: str, answers: list[str], threshold: float = ANLS_THRESHOLD) -> float:
    """Average Normalized Levenshtein Similarity of one answer against its references."""
    guess = " ".join(prediction.strip().lower().split())
    best = 0.0
    for answer in answers:
        target = " ".join(answer.strip().lower().split())
        distance = Levenshtein.normalized_distance(guess, target)
        best = max(best, 0.0 if distance >= threshold else 1.0 - distance)
    return best


def ask_metrics(pairs: list[tuple[str, list[str]]]) -> dict[str, float | None]:
    """Mean exact match and ANLS over (prediction, answers) pairs."""
    if not pairs:
        return {"exact_match": None, "anls": None}
    return {
        "exact_match": round(sum(exact_match(p, a) for p, a in pairs) / len(pairs), 4),
        "anls": round(sum(anls(p, a) for p, a in pairs) / len(pairs), 4),
    }


def ocr_metrics(pairs: list[tuple[str, list[str]]]) -> dict[str, float | None]:
    """Corpus CER and WER (jiwer) of each prediction against its first reference.

    Whitespace runs are collapsed first so line breaks do not count as errors.
    """
    if not pairs:
        return {"cer": None, "wer": None}
    hypotheses = [" ".join(p.split()) for p, _ in pairs]
    references = [" ".join(refs[0].split()) if refs else "" for _, refs in pairs]
    if not any(references):
        return {"cer": None, "wer": None}  # nothing to read: error rates are undefined
    return {"cer": round(float(jiwer.cer(references, hypotheses)), 4),
            "wer": round(float(jiwer.wer(references, hypotheses)), 4)}


def caption_metrics(pairs: list[tuple[str, list[str]]]) -> dict[str, float | None]:
    """Corpus BLEU-4 and chrF (sacrebleu, 0-100) against every reference of each image."""
    if not pairs:
        return {"bleu4": None, "chrf": None}
    hypotheses = [p for p, _ in pairs]
    most = max(len(refs) for _, refs in pairs)
    # sacrebleu takes one stream per reference slot; None marks an image with fewer.
    streams = [[refs[i] if i < len(refs) else None for _, refs in pairs] for i in range(most)]
    return {"bleu4": round(min(sacrebleu.corpus_bleu(hypotheses, streams).score, 100.0), 2),
            "chrf": round(min(sacrebleu.corpus_chrf(hypotheses, streams).score, 100.0), 2)}
