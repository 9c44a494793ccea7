"""The tasks ``score`` and ``eval`` can score (a light module: the CLI parser imports it)."""

SCORED_TASKS = ("detect", "segment", "ocr", "caption", "ask")
