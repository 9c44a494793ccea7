#!/usr/bin/env python3
"""Rebuild ``resources/selftest-model/``: the tiny random PaliGemma 2 that ``palidesk
--self-test`` runs (about 0.8 MB, F16), converted from the committed test checkpoint.

Run from the repository root with the project's venv:
``.venv/bin/python packaging/make_selftest_model.py``. The result is committed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.convert.converter import convert_checkpoint  # noqa: E402
from app.model_files.manifest import MANIFEST_NAME  # noqa: E402

SOURCE = Path("tests/fixtures/tiny/pg2-tiny-224")
TARGET = ROOT / "resources" / "selftest-model"


def main() -> int:
    shutil.rmtree(TARGET, ignore_errors=True)
    convert_checkpoint(ROOT / SOURCE, TARGET, "f16")
    # The converter records the absolute source path; keep this machine's layout out of
    # the shipped file (the app reads only the name, types and files).
    manifest_path = TARGET / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["path"] = SOURCE.as_posix()
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for path in sorted(TARGET.iterdir()):
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
