"""The core (app.session) stays light: every face imports it, the window at start-up and
each Ray worker, so it must not pull in the model hub client or the GGUF library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("huggingface_hub", "httpx", "httpx2", "gguf", "llama_cpp", "PySide6", "ray", "torch")


def test_importing_the_core_loads_no_heavy_library() -> None:
    code = ("import json, sys; import app.session; "
            "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    loaded = set(json.loads(result.stdout))
    assert "app" in loaded  # the check saw the import happen
    assert not loaded & set(HEAVY), f"app.session imports {sorted(loaded & set(HEAVY))}"
