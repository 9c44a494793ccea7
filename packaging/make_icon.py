#!/usr/bin/env python3
"""Draw PaliDesk's icon with Pillow: a rounded blue tile holding a lens over a text line.

``python packaging/make_icon.py`` writes ``resources/icons/palidesk-{48,128,256}.png``
(committed). ``--platform-icons DIR`` also writes ``palidesk.ico`` (Windows: 16-256 px)
and ``palidesk.icns`` (macOS) into DIR; the Windows and macOS build scripts run it into
``build/icons`` before PyInstaller.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
PNG_SIZES = (48, 128, 256)
MASTER = 1024  # drawn large, scaled down with a good filter for crisp small sizes


def draw(size: int = MASTER) -> Image.Image:
    """The icon at ``size`` pixels, RGBA."""
    s = size / 256  # the design is in a 256-unit grid
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(image)
    d.rounded_rectangle((8 * s, 8 * s, 248 * s, 248 * s), radius=52 * s, fill="#1f5fbf")
    d.rounded_rectangle((8 * s, 128 * s, 248 * s, 248 * s), radius=52 * s, fill="#184d9c")
    d.rectangle((8 * s, 128 * s, 248 * s, 180 * s), fill="#184d9c")
    # Lines of "text" the model reads, then the lens over them.
    for i, width in enumerate((150, 110, 130)):
        y = 150 + i * 26
        d.rounded_rectangle((40 * s, y * s, (40 + width) * s, (y + 12) * s),
                            radius=6 * s, fill="#9cc3ff")
    d.ellipse((70 * s, 36 * s, 186 * s, 152 * s), outline="#ffffff", width=round(16 * s))
    d.ellipse((104 * s, 70 * s, 152 * s, 118 * s), fill="#ffd34d")
    d.line((170 * s, 140 * s, 214 * s, 184 * s), fill="#ffffff", width=round(22 * s))
    return image


def write_pngs(master: Image.Image, folder: Path = ICONS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for px in PNG_SIZES:
        path = folder / f"palidesk-{px}.png"
        master.resize((px, px), Image.Resampling.LANCZOS).save(path, optimize=True)
        written.append(path)
    return written


def write_platform_icons(master: Image.Image, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ico, icns = folder / "palidesk.ico", folder / "palidesk.icns"
    master.resize((256, 256), Image.Resampling.LANCZOS).save(
        ico, sizes=[(n, n) for n in (16, 24, 32, 48, 64, 128, 256)])
    master.resize((1024, 1024), Image.Resampling.LANCZOS).save(icns)
    return [ico, icns]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform-icons", type=Path, metavar="DIR",
                        help="also write palidesk.ico and palidesk.icns into DIR")
    args = parser.parse_args()
    master = draw()
    paths = write_pngs(master)
    if args.platform_icons:
        paths += write_platform_icons(master, args.platform_icons)
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
