"""How a stored result is described to a user: its state, its time to the second, and
whether it was found for another file with the same bytes. Qt-free, so the History
dialog and the results list say the same thing and tests check it without a window."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from app.history.history_record import HistoryRecord

# stop_reason -> the state a user reads. "" is a record made before stop reasons were kept.
STATES = {
    "eos": "finished",
    "": "finished",
    "max_tokens": "cut at the limit",
    "cancelled": "cancelled, partial",
}


def record_state(record: HistoryRecord) -> str:
    """"finished", "cut at the limit" (Max new tokens reached) or "cancelled, partial"."""
    return STATES.get(record.stop_reason, record.stop_reason)


def local_time(created: str, seconds: bool = False) -> str:
    """ISO 8601 UTC text as local "YYYY-MM-DD HH:MM" (":SS" too with ``seconds``); as is
    when it cannot be read. Seconds tell apart two runs of the same minute."""
    try:
        moment = datetime.fromisoformat(created).astimezone()
    except ValueError:
        return created
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def same_bytes_note(record: HistoryRecord, image_path: Path | str) -> str:
    """A sentence when ``record`` was made for another file whose bytes are identical to
    ``image_path``'s (the answer is the same, so it is not run again); "" otherwise."""
    if Path(record.image_path) == Path(image_path):
        return ""
    return (f"Answer found for identical bytes: it was made for "
            f"{Path(record.image_path).name}.")
