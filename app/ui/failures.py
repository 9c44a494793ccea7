"""What the window says when an action fails, without hiding a bug.

A PaliDeskError is already a sentence for the user. Anything else is a bug: the window
still says it (an action's failure must not take the window down), and the log keeps its
trace so that it can be found and fixed.
"""

from __future__ import annotations

import logging

from app.errors import PaliDeskError

log = logging.getLogger(__name__)


def failure_text(exc: Exception, doing: str) -> str:
    """The sentence to show for ``exc``, raised while ``doing`` (e.g. "removing a model")."""
    if not isinstance(exc, PaliDeskError):
        log.error("%s failed unexpectedly", doing, exc_info=exc)
    return str(exc) or type(exc).__name__
