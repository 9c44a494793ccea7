"""Choosing which records an image-by-image export uses, and naming their labels."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from app.history.history_record import HistoryRecord
from app.tasks.output_text import clean_output_text

SPATIAL_TASKS = frozenset({"detect", "segment"})

__all__ = ["SPATIAL_TASKS", "clean_output_text", "labels_in_order", "newest_per_key",
           "spatial_records"]


def newest_per_key(
    records: Iterable[HistoryRecord], key: Callable[[HistoryRecord], Hashable]
) -> list[HistoryRecord]:
    """The newest record (by ``created``, then ``id``) for each key, in first-seen order.

    A re-run of the same task on the same image replaces the older result instead of
    doubling its boxes or fighting over one caption file.
    """
    chosen: dict[Hashable, HistoryRecord] = {}
    for record in records:
        known = chosen.get(key(record))
        if known is None or _age(record) >= _age(known):
            chosen[key(record)] = record
    return list(chosen.values())


def spatial_records(records: Iterable[HistoryRecord]) -> list[HistoryRecord]:
    """The detect and segment records, newest per image and prompt."""
    return newest_per_key(
        (record for record in records if record.task in SPATIAL_TASKS),
        lambda record: (record.image_path, record.task, record.prompt),
    )


def labels_in_order(records: Iterable[HistoryRecord]) -> list[str]:
    """Every object label, once each, in order of first appearance (stable class ids)."""
    return list(dict.fromkeys(obj.label for record in records for obj in record.objects))


def _age(record: HistoryRecord) -> tuple[str, int]:
    return (record.created, record.id if record.id is not None else -1)
