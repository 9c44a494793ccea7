"""The engine's own limits, which the settings and the command line validate against.

Light to import (no llama.cpp): app.settings reads them, and the settings are loaded
before any model is.
"""

# The most new tokens one answer may have. The context is sized for it, so raising
# "Max new tokens" up to this never needs a reload (app/engine/engine.py).
MAX_NEW_TOKENS = 2048

# The generation options' ranges, the same for `palidesk run`/`batch` (app.cli.option_types)
# and the server's request bodies (app.server.schemas): one place, so a value one face
# takes is never refused by the other.
MAX_TEMPERATURE = 100.0
MAX_TOP_K = 1_000_000
MAX_SEED = 2**63 - 1
