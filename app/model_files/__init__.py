"""What sits on disk for one model: its folder's manifest, the GGUF files' header and keys,
their verification, and where a checkpoint lives in the Hugging Face cache.

Below the converter and the engine, which read and write these files, and below
app.models, which fetches, prepares and chooses models."""
