"""The history of results: a SQLite file the window lists, searches and exports from."""

from app.history.history_record import HistoryRecord, file_sha256, object_from_dict, utc_now
from app.history.history_store import HistoryStore, default_history_path

__all__ = [
    "HistoryRecord",
    "HistoryStore",
    "default_history_path",
    "file_sha256",
    "object_from_dict",
    "utc_now",
]
