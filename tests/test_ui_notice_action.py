"""A notice can carry one button that acts on it (e.g. "Get Mask Decoder…")."""

from __future__ import annotations

from app.models.mask_decoder import MISSING_NOTICE
from app.ui.notice_bar import NoticeBar


def test_notice_with_an_action_button(qtbot) -> None:
    bar = NoticeBar()
    qtbot.addWidget(bar)
    bar.show()
    clicked: list[bool] = []
    bar.show_notice(MISSING_NOTICE, action=("Get Mask Decoder…", lambda: clicked.append(True)))
    assert bar.text() == MISSING_NOTICE and "boxes" in MISSING_NOTICE
    assert bar.action_button.isVisible() and bar.action_button.text() == "Get Mask Decoder…"
    bar.action_button.click()
    assert clicked == [True]
    bar.show_notice("Skipped 2 files.")  # a plain notice has no button
    assert not bar.action_button.isVisible()
    bar.action_button.click()
    assert clicked == [True]
