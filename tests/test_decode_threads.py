"""Choosing the decode thread count per task: try both, keep the faster."""

from __future__ import annotations

from app.engine.decode_threads import TRIAL_STEPS, DecodeThreadChooser


def _run(chooser: DecodeThreadChooser, seconds_for: dict[int, float], steps: int) -> list[int]:
    used = []
    for _ in range(steps):
        threads = chooser.next_threads()
        used.append(threads)
        chooser.record(threads, seconds_for[threads])
    return used


def test_idle_machine_keeps_both_threads() -> None:
    used = _run(DecodeThreadChooser(2), {2: 0.070, 1: 0.095}, 20)
    assert used[:TRIAL_STEPS] == [2] * TRIAL_STEPS
    assert used[TRIAL_STEPS : 2 * TRIAL_STEPS] == [1] * TRIAL_STEPS
    assert used[2 * TRIAL_STEPS :] == [2] * (20 - 2 * TRIAL_STEPS)


def test_busy_core_switches_to_one_thread() -> None:
    used = _run(DecodeThreadChooser(2), {2: 0.400, 1: 0.110}, 20)
    assert used[2 * TRIAL_STEPS :] == [1] * (20 - 2 * TRIAL_STEPS)


def test_single_thread_config_never_changes() -> None:
    assert _run(DecodeThreadChooser(1), {1: 0.1}, 10) == [1] * 10


def test_many_cores_try_one_fewer_not_one() -> None:
    # 16 threads with one core taken by someone else: 15 is the sensible alternative.
    used = _run(DecodeThreadChooser(16), {16: 0.300, 15: 0.060}, 20)
    assert set(used) == {16, 15}
    assert used[2 * TRIAL_STEPS :] == [15] * (20 - 2 * TRIAL_STEPS)
