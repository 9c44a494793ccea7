"""``palidesk info``: what a model folder holds, and whether it is usable."""

from __future__ import annotations

from pathlib import Path

from app.errors import PaliDeskError
from app.model_files.model_folder import ModelFolder
from app.model_files.verification import check_file


def print_info(folder: Path, verify: bool = False) -> int:
    """Print the folder's contents; with ``verify``, hash every file against the manifest."""
    model = ModelFolder(folder)
    m = model.manifest
    print(f"model folder: {Path(folder).resolve()}")
    print(f"source:       {m.source.get('name')} ({m.source.get('path')})")
    print(f"image size:   {m.image_size} px ({m.image_tokens} image tokens)")
    t = m.text
    print(f"decoder:      Gemma 2, {t.get('layers')} layers, hidden {t.get('hidden')}, "
          f"vocabulary {t.get('vocab')}")
    print(f"converter:    {m.converter_version}, {m.created}")
    print("files:")
    damaged = 0
    for entry in m.files:
        present = (Path(folder) / entry.name).exists()
        state = "" if present else "  (missing)"
        if present and verify:
            try:
                check_file(Path(folder), entry, hash_always=True)
                state = "  checksum ok"
            except PaliDeskError as exc:
                state = f"  DAMAGED: {exc}"
                damaged += 1
        print(f"  {entry.role:<6} {entry.type:<7} {entry.size / 1e6:10.1f} MB  {entry.name}{state}")
    try:
        pair = model.resolve()
        if damaged:
            raise PaliDeskError(f"{damaged} file(s) do not match their checksum.")
        print(f"ready:        yes (default text model {pair.quant})")
    except PaliDeskError as exc:
        print(f"ready:        no - {exc}")
        return 1
    return 0
