"""The engine's own limits, which the settings and the command line validate against.

Light to import (no llama.cpp): app.settings reads them, and the settings are loaded
before any model is.
"""

# The most new tokens one answer may have. The context is sized for it, so raising
# "Max new tokens" up to this never needs a reload (app/engine/engine.py).
MAX_NEW_TOKENS = 2048
