"""When streamed output is shown (Qt-free): at once when slow, once per frame when fast."""

from __future__ import annotations

import dataclasses

from app.history.history_record import object_from_dict
from app.session.stream_pacing import FRAME_S, StreamPacer, shows_same
from app.tasks import parse_objects


def test_the_first_piece_after_a_quiet_frame_is_due_at_once() -> None:
    pacer: StreamPacer[str] = StreamPacer()
    assert pacer.add("a", now=10.0) == 0.0
    assert pacer.take(10.0) == ["a"]
    # One frame later the next piece is due at once again: a slow stream is not delayed.
    assert pacer.add("b", now=10.0 + FRAME_S) == 0.0


def test_pieces_within_a_frame_wait_for_its_end_and_come_together() -> None:
    pacer: StreamPacer[str] = StreamPacer(frame_s=0.025)
    pacer.add("a", now=1.0)
    pacer.take(1.0)
    wait = pacer.add("b", now=1.005)
    assert abs(wait - 0.020) < 1e-9
    pacer.add("c", now=1.010)
    assert abs(pacer.wait(1.010) - 0.015) < 1e-9
    assert pacer.wait(1.030) == 0.0
    assert pacer.take(1.030) == ["b", "c"] and len(pacer) == 0


def test_clear_drops_what_is_held_and_the_next_piece_is_due_at_once() -> None:
    pacer: StreamPacer[str] = StreamPacer()
    pacer.add("a", now=0.0)
    pacer.take(0.0)
    pacer.add("b", now=0.001)
    pacer.clear()
    assert len(pacer) == 0 and pacer.take(0.002) == []
    assert pacer.add("c", now=0.002) == 0.0


def test_streamed_objects_show_the_same_as_their_stored_copies() -> None:
    text = "<loc0100><loc0200><loc0300><loc0400> cat ; <loc0011><loc0333><loc0777><loc0999> dog"
    streamed = parse_objects(text, (97, 150), segmentation=False)
    stored = [object_from_dict(obj.to_dict()) for obj in streamed]  # boxes rounded
    assert streamed != stored  # the stored boxes really are rounded
    assert shows_same(streamed, stored)
    assert not shows_same(streamed, stored[:1])
    moved = dataclasses.replace(stored[1], box=(1.0, 2.0, 3.0, 4.0))
    assert not shows_same(streamed, [stored[0], moved])
    assert shows_same([], [])
