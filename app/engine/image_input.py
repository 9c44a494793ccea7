"""Images in: open safely, resize exactly like the reference, and fingerprint.

transformers' PaliGemma processor resizes to S×S (ignoring aspect ratio) with Pillow's
bicubic filter, then rescales and normalises. We do the resize here with the same Pillow
call and hand mtmd an image that already has its target size, which it copies unchanged
before normalising with the GGUF's mean/std (0.5/0.5).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from app.errors import ImageError


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the vision encoder."""

    original_size: tuple[int, int]  # (width, height) of the image as the user gave it
    side: int  # S: the model's square input size
    rgb: bytes  # S*S*3 bytes, row-major RGB
    digest: str  # fingerprint of ``rgb``: the image-embedding cache key
    source: str = ""


def open_image(source: str | Path | Image.Image) -> Image.Image:
    """Open ``source`` as an RGB image, or raise ImageError in plain words."""
    if isinstance(source, Image.Image):
        image = source
    else:
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{path} does not exist.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(path)
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(
                f"{path.name} is too large to open safely ({exc}). Scale it down first."
            ) from exc
        except UnidentifiedImageError as exc:
            raise ImageError(f"{path.name} is not an image PaliDesk can read.") from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"{path.name} is damaged or truncated ({exc}).") from exc
    try:
        if image.mode == "RGB":
            return image
        # As transformers' convert_to_rgb: composite onto white, so transparency does not
        # turn black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageError(f"The image cannot be decoded ({exc}).") from exc


def prepare_image(source: str | Path | Image.Image, side: int) -> PreparedImage:
    """Open and resize ``source`` to ``side``×``side`` with Pillow's bicubic filter."""
    image = open_image(source)
    if image.width < 1 or image.height < 1:
        raise ImageError("The image is empty (zero pixels).")
    resized = image if image.size == (side, side) else image.resize(
        (side, side), Image.Resampling.BICUBIC
    )
    rgb = resized.tobytes()
    return PreparedImage(
        original_size=image.size,
        side=side,
        rgb=rgb,
        digest=hashlib.sha256(rgb).hexdigest(),
        source=str(source) if not isinstance(source, Image.Image) else "",
    )
