"""What ``models pull``/``models import`` check before anything is copied or made.

A model's name becomes a folder in the models folder: anything but one plain path
component would install it elsewhere (``../../x``) or where ``models list`` never looks
(``a/b``). The quantization types and the folder being imported are checked here too, so
a refusal leaves no ``NAME.partial`` behind and nothing damaged gets installed.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import ModelFolderError

_MAX_NAME_BYTES = 200  # below the usual 255-byte file-name limit, leaving room for suffixes


def check_install_name(name: str) -> str:
    """``name`` if it can be a model folder's name; else ModelFolderError saying why."""
    from app.models.installed import WORK_SUFFIX

    shown = repr(name)
    if not name.strip():
        raise ModelFolderError("The model name is empty; give --name a name such as "
                               "my-model.")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ModelFolderError(
            f"The model name {shown} is not a plain name: it names a folder inside the "
            "models folder, so it cannot hold / or \\ or be . or .. (e.g. --name my-model).")
    if name.startswith(".") or name.endswith(WORK_SUFFIX) or "\0" in name:
        raise ModelFolderError(
            f"The model name {shown} cannot start with a dot, hold a NUL or end in "
            f"{WORK_SUFFIX} (PaliDesk's mark for unfinished work).")
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        raise ModelFolderError(f"The model name is longer than {_MAX_NAME_BYTES} bytes.")
    return name


def check_quant_types(quants: tuple[str, ...]) -> None:
    """Refuse an unknown quantization type before any download, copy or conversion."""
    from app.models.quantize import FTYPES

    unknown = [q for q in quants if q not in FTYPES]
    if unknown:
        raise ModelFolderError(
            f"Unknown quantization {unknown[0]!r} in --quant; choose from "
            f"{', '.join(FTYPES)} (comma-separated for several).")
    if not quants:
        raise ModelFolderError(f"--quant is empty; choose from {', '.join(FTYPES)}.")


def check_import_source(path: Path) -> None:
    """A PaliDesk model folder is checked file by file against its manifest before it is
    copied, as ``convert`` checks what it wrote: a truncated or altered file is refused
    here, not at the first ``run``. (A Hugging Face checkpoint is checked by conversion.)"""
    from app.file_digest import file_sha256
    from app.model_files.manifest import MANIFEST_NAME, read_manifest
    from app.model_files.verification import check_size

    if not path.exists():
        raise ModelFolderError(f"{path} does not exist.")
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a folder: import takes a Hugging Face "
                               "checkpoint folder or a PaliDesk model folder.")
    if not (path / MANIFEST_NAME).exists():
        return
    for entry in read_manifest(path).files:
        if not (path / entry.name).exists():
            continue  # a quantization deleted to save space: the folder works without it
        try:
            check_size(path, entry)  # a truncated copy: told at once, nothing hashed
            # Every file is hashed (the copy reads them all anyway); nothing is written
            # into the folder being imported, not even the verification stamp.
            same = file_sha256(path / entry.name) == entry.sha256
        except ModelFolderError as exc:
            raise ModelFolderError(f"Not imported: {exc}") from None
        except OSError as exc:
            raise ModelFolderError(f"Not imported: {path / entry.name} cannot be read "
                                   f"({exc.strerror or exc}).") from None
        if not same:
            raise ModelFolderError(
                f"Not imported: {entry.name} in {path} is damaged (its content does not "
                "match the checksum recorded when it was written).")
