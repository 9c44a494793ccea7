"""An action that fails says why in the window; one that fails from a bug is logged too."""

from __future__ import annotations

import logging

from app.errors import ModelFolderError
from app.ui.failures import failure_text


def test_a_palidesk_error_is_said_and_not_logged(caplog) -> None:
    with caplog.at_level(logging.ERROR):
        text = failure_text(ModelFolderError("The folder is gone."), "removing a model")
    assert text == "The folder is gone." and not caplog.records


def test_a_bug_is_said_and_logged_with_its_trace(caplog) -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        with caplog.at_level(logging.ERROR):
            text = failure_text(exc, "removing a model")
    assert text == "'missing'"
    (record,) = caplog.records
    assert "removing a model failed unexpectedly" in record.getMessage()
    assert record.exc_info is not None
