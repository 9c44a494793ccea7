"""Scoring PaliGemma's answers against labelled images, and comparing quantizations.

Plain Python (no Qt): the CLI (``palidesk score``, ``palidesk eval``) and the window's
Tools menu both call it. Metrics come from the fields' own libraries (pycocotools,
jiwer, sacrebleu); only ANLS and PaliGemma's answer normalisation, which have no
standard package, are written here.
"""
