"""Images in: open safely, resize exactly like the reference, and fingerprint.

transformers' PaliGemma processor resizes to S×S (ignoring aspect ratio) with Pillow's
bicubic filter, then rescales and normalises. We do the resize here with the same Pillow
call and hand mtmd an image that already has its target size, which it copies unchanged
before normalising with the GGUF's mean/std (0.5/0.5).
"""

from __future__ import annotations

import hashlib
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from app import file_errors
from app.errors import ImageError


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the vision encoder."""

    original_size: tuple[int, int]  # (width, height) of the image as the user gave it
    side: int  # S: the model's square input size
    rgb: bytes  # S*S*3 bytes, row-major RGB
    digest: str  # fingerprint of ``rgb``: the image-embedding cache key
    source: str = ""


# Real photos go up to ~200 MP (a 108 MP phone photo is 12000 x 9000); beyond this an
# image is refused rather than risk gigabytes of pixels. Pillow's own limit (89 MP, and a
# "decompression bomb" error) would refuse real phone photos.
MAX_PIXELS = 250_000_000
# Up to this size images are decoded whole, exactly as the reference reads them; larger
# ones are decoded at a reduced scale where the format allows (JPEG's DCT scaling).
EXACT_PIXELS = 90_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_ORIENTATION = 0x0112  # EXIF tag
_TURNED = (5, 6, 7, 8)  # orientations that swap width and height


def open_image(source: str | Path | Image.Image, *, min_side: int | None = None) -> Image.Image:
    """Open ``source`` as an upright RGB image, or raise ImageError in plain words.

    The EXIF orientation is applied (as transformers' image loading does), so a phone
    photo is upright for the model and the view alike. ``min_side``: the caller needs no
    more than this many pixels across; an image above ``EXACT_PIXELS`` is then decoded
    at a reduced scale that keeps both sides at least that long.
    """
    return open_sized(source, min_side=min_side)[0]


def open_sized(source: str | Path | Image.Image, *,
               min_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """``open_image``, plus the upright (width, height) of the full-size original, which
    a reduced-scale decode does not have."""
    if isinstance(source, Image.Image):
        image = source
        orientation, stored_size = _orientation(image), image.size
    else:
        path = Path(source)
        _check_regular_file(path)
        try:
            with path.open("rb") as file, warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(file)
                orientation, stored_size = _orientation(image), image.size
                if min_side and image.width * image.height > EXACT_PIXELS:
                    image.draft(None, (min_side, min_side))
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(_too_large(path, exc)) from exc
        except UnidentifiedImageError as exc:
            raise ImageError(f"{path.name} is not an image PaliDesk can read.") from exc
        except PermissionError as exc:
            raise ImageError(f"PaliDesk is not allowed to read {path}.") from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"{path.name} is damaged or truncated ({exc}).") from exc
    if min_side and image.width * image.height > EXACT_PIXELS:
        image = _reduced(image, min_side)
    width, height = stored_size  # before any reduced-scale decoding
    full_size = (height, width) if orientation in _TURNED else (width, height)
    try:
        # Only turned images are copied (exif_transpose copies even an upright one).
        upright = ImageOps.exif_transpose(image) if orientation != 1 else image
        if upright.mode == "RGB":
            return upright, full_size
        # As transformers' convert_to_rgb: composite onto white, so transparency does not
        # turn black.
        rgba = upright.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), full_size
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"The image cannot be decoded ({exc}).") from exc


def _check_regular_file(path: Path) -> None:
    """Refuse, in words, what is not a plain file: opening a named pipe would wait forever."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageError(f"{path} is a link to a file that does not exist.") from None
        raise ImageError(f"{path} does not exist.") from None
    except OSError as exc:
        raise ImageError(f"{path} cannot be opened: {file_errors.reason(exc, path)}.") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{path} is a folder, not an image.")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(
            f"{path} is not a regular file (a named pipe, device or socket), so PaliDesk "
            "does not read it as an image."
        )


def _reduced(image: Image.Image, min_side: int) -> Image.Image:
    """Shrink an image its format could not decode at a reduced scale (e.g. a huge PNG)."""
    factor = min(image.size) // min_side
    if factor < 2:
        return image
    try:
        return image.reduce(factor)
    except ValueError:  # a mode reduce() does not take: keep the full size
        return image


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright as stored), read before any pixel is decoded."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # unreadable EXIF: show it as stored
        return 1
    return orientation if orientation in range(1, 9) else 1


def _too_large(path: Path, exc: Exception) -> str:
    # Pillow's message starts with the image's pixel count.
    match = re.search(r"(\d+) pixels", str(exc))
    size = f" ({int(match[1]) / 1e6:.0f} megapixels)" if match else ""
    return (f"{path.name} is too large{size}: PaliDesk opens images up to "
            f"{MAX_PIXELS // 1_000_000} megapixels. Scale it down first.")


def prepare_image(source: str | Path | Image.Image, side: int) -> PreparedImage:
    """Open and resize ``source`` to ``side``×``side`` with Pillow's bicubic filter."""
    image, full_size = open_sized(source, min_side=side)
    if image.width < 1 or image.height < 1:
        raise ImageError("The image is empty (zero pixels).")
    resized = image if image.size == (side, side) else image.resize(
        (side, side), Image.Resampling.BICUBIC
    )
    rgb = resized.tobytes()
    return PreparedImage(
        original_size=full_size,
        side=side,
        rgb=rgb,
        digest=hashlib.sha256(rgb).hexdigest(),
        source=str(source) if not isinstance(source, Image.Image) else "",
    )
