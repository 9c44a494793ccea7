"""PaliDesk's own GGUF metadata keys, written by the converter and checked at load time
so that a text file and a vision file that do not belong together are refused."""

PAIR_ID = "palidesk.pair_id"
IMAGE_SIZE = "palidesk.image_size"
IMAGE_TOKENS = "palidesk.image_tokens"
IMAGE_TOKEN_ID = "palidesk.image_token_id"
TEXT_HIDDEN = "palidesk.text_hidden"
CONVERTER_VERSION = "palidesk.converter_version"
SOURCE = "palidesk.source"
ROLE = "palidesk.role"  # "text" or "vision"
