"""PaliDesk: PaliGemma 2 on a desk, through unmodified llama.cpp."""

__version__ = "0.1.0"
