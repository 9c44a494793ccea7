#!/usr/bin/env python3
"""Screenshot of segment masks drawn by the image view, from a scripted segment answer.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python tools/segment_masks_screenshot.py

The tiny test models rarely write complete segment objects, so the answer is scripted:
three objects with box codes and 16 mask codes each, and a fourth whose codes stop early
(it keeps its box only). The masks are decoded by PaliDesk's real decoder and pasted the
way big_vision does, but with RANDOM decoder weights (big_vision's vae-oid.npz cannot be
downloaded on the machine this ran on), so their shapes are blobs, not objects: the
picture shows how masks are drawn (label colour, translucent, under the box), not what a
trained decoder finds. Writes docs/screenshots/segment-masks.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

IMAGE = ROOT / "tests" / "fixtures" / "images" / "strokes_500x500.png"


def _locs(*values: int) -> str:
    return "".join(f"<loc{v:04d}>" for v in values)


def _segs(*codes: int) -> str:
    return "".join(f"<seg{c:03d}>" for c in codes)


ANSWER = (
    _locs(80, 60, 560, 470) + _segs(5, 17, 99, 3, 64, 127, 0, 45, 81, 12, 33, 76, 120, 8,
                                     59, 101) + " cat ; "
    + _locs(430, 520, 980, 990) + _segs(*range(100, 116)) + " dog ; "
    + _locs(600, 40, 1000, 400) + _segs(*range(30, 46)) + " ball ; "
    + _locs(60, 620, 330, 960) + _segs(1, 2, 3, 4, 5, 6) + " bird<eos>"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=ROOT / "docs" / "screenshots" / "segment-masks.png")
    args = parser.parse_args()

    from mask_weights import write_random_decoder
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

    from app.tasks.object_masks import mask_area, with_mask
    from app.tasks.parsing import IncrementalObjectParser
    from app.ui.image_view import ImageView

    app = QApplication(sys.argv[:1])
    weights = write_random_decoder(Path(tempfile.mkdtemp()) / "vae-oid.npz")
    window = QWidget()
    window.setWindowTitle("PaliDesk: segment masks")
    view = ImageView()
    caption = QLabel()
    caption.setWordWrap(True)
    layout = QVBoxLayout(window)
    layout.addWidget(view, 1)
    layout.addWidget(caption)
    window.resize(760, 720)
    window.show()
    view.show_image(IMAGE)

    # What run_task does in the worker, piece by piece as the tokens stream in.
    size = (500, 500)
    parser = IncrementalObjectParser(size, segmentation=True)
    lines = []
    pieces = [ANSWER[i:i + 7] for i in range(0, len(ANSWER), 7)]
    for piece in [*pieces, None]:
        found = parser.feed(piece) if piece is not None else parser.finish()
        for obj in found:
            obj = with_mask(obj, weights, size)
            view.add_object(obj)
            area = mask_area(obj)
            lines.append(f"{obj.label}: " + (f"mask {area} px" if area is not None
                                             else "box only (incomplete mask codes)"))
    caption.setText("Scripted segment answer; masks from PaliDesk's decoder with RANDOM "
                    "weights (blobs, not real shapes). " + " · ".join(lines))

    loop = QEventLoop()
    QTimer.singleShot(600, loop.quit)
    loop.exec()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out))
    print(f"wrote {args.out}")
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
