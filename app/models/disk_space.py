"""How much disk a model needs (download + conversion + quantization), and whether it fits."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from app.errors import DiskSpaceError
from app.models import catalog
from app.models.catalog import VariantDims
from app.models.hub_files import DownloadPlan

# Last resort when no shapes are known (a local folder without a usable config.json): the
# size of each quantized text file as a share of the F16 GGUF, from llama.cpp's bits per
# weight (Q4_K_M ~ 4.9 of 16). Applied to the whole F16 size although the vision file stays
# F16, so it errs on the side of asking for more space. Catalog models and any repository
# whose config.json was read use sizes computed from the shapes.
QUANT_SIZE_RATIO: dict[str, float] = {
    "Q2_K": 0.21,
    "Q3_K_M": 0.25,
    "Q4_0": 0.29,
    "Q4_K_M": 0.31,
    "Q5_K_M": 0.36,
    "Q6_K": 0.42,
    "Q8_0": 0.54,
    "F16": 0.0,  # the conversion's own output, already counted
    "BF16": 1.0,
}
# Room left for the system and temporary files, so a model never fills the disk to the brim.
DISK_MARGIN_BYTES = 1 << 30


def required_disk_bytes(
    plan: DownloadPlan,
    quant_types: Iterable[str] = (),
    *,
    convert: bool = True,
    dims: VariantDims | None = None,
) -> int:
    """Bytes needed to download ``plan``, convert it to F16 GGUF and make each quant type.

    ``convert=False`` counts the download alone. ``dims``: the shapes the checkpoint's
    config.json describes, for a repository the catalog does not know. A margin is
    always added.
    """
    needed = plan.total_bytes + DISK_MARGIN_BYTES
    if convert:
        needed += conversion_bytes(plan, [q.upper() for q in quant_types], dims)
    return needed


def conversion_bytes(
    plan: DownloadPlan, quant_types: list[str], dims: VariantDims | None = None
) -> int:
    """The F16 GGUF files plus one text file per quant type (the vision file is shared)."""
    entry = catalog.entry_for_repo(plan.repo_id)
    if entry is not None:
        dims = entry.dims
    return gguf_bytes(dims, quant_types) if dims is not None else _ratio_estimate(
        plan.weights_bytes, quant_types)


def gguf_bytes(dims: VariantDims, quant_types: Iterable[str]) -> int:
    """The F16 pair plus one text file per other quant type, computed from the shapes like
    llama.cpp's quantizer chooses tensor types (near byte-exact)."""
    extra = [q.upper() for q in quant_types if q.upper() != "F16"]
    return (catalog.text_file_bytes(dims, "F16") + catalog.vision_file_bytes(dims)
            + sum(catalog.text_file_bytes(dims, q) for q in extra))


def _ratio_estimate(weights_bytes: int, quant_types: list[str]) -> int:
    # The F16 GGUF is about as large as the safetensors (PaliGemma 2 ships bf16 weights).
    extra = [q for q in quant_types if q != "F16"]
    return weights_bytes + sum(int(weights_bytes * QUANT_SIZE_RATIO.get(q, 1.0))
                               for q in extra)


def format_size(nbytes: float) -> str:
    """Bytes in the units people read (decimal, like file managers): 1.3 GB, 840 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(nbytes) >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def existing_parent(path: Path) -> Path:
    """``path`` or its nearest existing parent (a destination may not exist yet)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def same_disk(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` (or their nearest existing parents) are on one file system."""
    try:
        return existing_parent(a).stat().st_dev == existing_parent(b).stat().st_dev
    except OSError:
        return True  # cannot tell: count everything on one disk, the safe side


def check_disk_space(path: Path, needed: int, what: str = "the model") -> None:
    """Raise DiskSpaceError when the disk holding ``path`` has less than ``needed`` free."""
    free = shutil.disk_usage(existing_parent(path)).free
    if needed > free:
        raise DiskSpaceError(
            f"There is not enough free disk space in {path}: {what} needs about "
            f"{format_size(needed)}, but only {format_size(free)} is free. Free some space "
            "or choose a folder on another disk, then try again."
        )
