"""The GGUF vocabulary: from sentencepiece's ``tokenizer.model`` or from ``tokenizer.json``.

``tokenizer.model`` is read by a small protobuf parser of our own (the sentencepiece
Python API cannot tell user-defined pieces apart, and we need exactly that: llama.cpp
splits ``<loc0012>`` into characters unless the piece is typed USER_DEFINED).

A checkpoint that ships only ``tokenizer.json`` is converted by deriving the same three
lists (pieces, scores, types) from the fast tokenizer: ids and pieces from the BPE
vocabulary, types from ``added_tokens`` and the byte-fallback pieces, and scores the way
sentencepiece's BPE trainer assigns them (see ``_bpe_scores``).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import ConversionError

# Token types, shared by sentencepiece and llama.cpp (llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass
class Vocab:
    """What llama.cpp's SPM tokenizer needs, in token-id order."""

    tokens: list[str]
    scores: list[float]
    types: list[int]
    bos_id: int = 2
    eos_id: int = 1
    pad_id: int = 0
    unk_id: int = 3
    add_space_prefix: bool = False
    source: str = field(default="tokenizer.model", compare=False)

    def __len__(self) -> int:
        return len(self.tokens)

    def id_of(self, piece: str) -> int | None:
        try:
            return self.tokens.index(piece)
        except ValueError:
            return None

    def padded_to(self, n_rows: int) -> Vocab:
        """Pad with unused placeholders up to the embedding matrix's row count.

        PaliGemma's embedding has 257216 rows for 257152 tokens; llama.cpp requires one
        token per row. The names follow llama.cpp's own converter.
        """
        if n_rows < len(self.tokens):
            raise ConversionError(
                f"The tokenizer has {len(self.tokens)} tokens but the embedding matrix only "
                f"{n_rows} rows: tokenizer and weights do not belong together."
            )
        extra = range(len(self.tokens), n_rows)
        return Vocab(
            self.tokens + [f"[PAD{i}]" for i in extra],
            self.scores + [-1000.0] * len(extra),
            self.types + [UNUSED] * len(extra),
            self.bos_id, self.eos_id, self.pad_id, self.unk_id, self.add_space_prefix,
            self.source,
        )


# --- tokenizer.model (a protobuf ModelProto) ------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes | float]]:
    """Decode one protobuf message level into (field number, value) pairs."""
    out: list[tuple[int, int | bytes | float]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 1:
            out.append((number, buf[pos : pos + 8]))
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 5:
            out.append((number, struct.unpack("<f", buf[pos : pos + 4])[0]))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def vocab_from_sentencepiece(path: Path) -> Vocab:
    """Read pieces, scores and types from a sentencepiece ``tokenizer.model``."""
    try:
        top = _fields(path.read_bytes())
    except (OSError, ValueError, IndexError, struct.error) as exc:
        raise ConversionError(f"{path.name} is not a valid sentencepiece model ({exc}).") from exc
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    add_dummy_prefix = True  # protobuf default
    for number, value in top:
        if number == 1 and isinstance(value, bytes):  # repeated SentencePiece pieces
            piece, score, kind = "", 0.0, NORMAL
            for sub, sub_value in _fields(value):
                if sub == 1 and isinstance(sub_value, bytes):
                    piece = sub_value.decode("utf-8")
                elif sub == 2 and isinstance(sub_value, float):
                    score = sub_value
                elif sub == 3 and isinstance(sub_value, int):
                    kind = sub_value
            tokens.append(piece)
            scores.append(score)
            types.append(kind)
        elif number == 3 and isinstance(value, bytes):  # NormalizerSpec
            for sub, sub_value in _fields(value):
                if sub == 3 and isinstance(sub_value, int):
                    add_dummy_prefix = bool(sub_value)
    if not tokens:
        raise ConversionError(f"{path.name} holds no vocabulary.")
    return _with_special_ids(
        Vocab(tokens, scores, types, add_space_prefix=add_dummy_prefix, source=path.name)
    )


# --- tokenizer.json (Hugging Face fast tokenizer) --------------------------------------


def vocab_from_tokenizer_json(path: Path) -> Vocab:
    """Derive the sentencepiece vocabulary from a fast tokenizer's ``tokenizer.json``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = data["model"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConversionError(f"{path.name} is not a valid tokenizer.json ({exc}).") from exc
    if model.get("type") != "BPE":
        raise ConversionError(
            f"{path.name} describes a {model.get('type')} tokenizer; PaliGemma's is BPE."
        )
    raw_vocab = model["vocab"]
    by_id: dict[int, str] = (
        {int(i): p for p, i in raw_vocab.items()}
        if isinstance(raw_vocab, dict)
        else {i: p for i, (p, _) in enumerate(raw_vocab)}
    )
    added = {int(t["id"]): t for t in data.get("added_tokens", [])}
    for token_id, token in added.items():
        by_id.setdefault(token_id, token["content"])
    size = max(by_id) + 1
    if len(by_id) != size:
        raise ConversionError(f"{path.name} has gaps in its token ids.")
    tokens = [by_id[i] for i in range(size)]
    unk = model.get("unk_token")
    byte_fallback = bool(model.get("byte_fallback"))
    types: list[int] = []
    for token_id, piece in enumerate(tokens):
        if piece == unk:
            types.append(UNKNOWN)
        elif token_id in added:
            types.append(CONTROL if added[token_id].get("special") else USER_DEFINED)
        elif byte_fallback and _BYTE_PIECE.match(piece):
            types.append(BYTE)
        else:
            types.append(NORMAL)
    merges = model.get("merges") or []
    return _with_special_ids(
        Vocab(
            tokens,
            _bpe_scores(tokens, types, merges),
            types,
            add_space_prefix=_prepends_space(data),
            source=path.name,
        )
    )


def _bpe_scores(tokens: list[str], types: list[int], merges: list[object]) -> list[float]:
    """Scores as sentencepiece's BPE trainer writes them.

    The trainer numbers the pieces it learns in order and scores piece k as -k; special,
    user-defined and byte pieces score 0. The fast tokenizer keeps the pieces in id order,
    so the k-th NORMAL piece (in id order) gets -k.
    """
    del merges  # the id order already carries the merge priority
    scores: list[float] = []
    rank = 0
    for kind in types:
        if kind == NORMAL:
            scores.append(-float(rank))
            rank += 1
        else:
            scores.append(0.0)
    return scores


def _prepends_space(data: dict) -> bool:
    """Whether the tokenizer adds sentencepiece's dummy '▁' prefix to the input."""
    text = json.dumps([data.get("normalizer"), data.get("pre_tokenizer")])
    return '"Prepend"' in text or '"prepend_scheme": "always"' in text


def _with_special_ids(vocab: Vocab) -> Vocab:
    def find(*names: str, default: int) -> int:
        for name in names:
            found = vocab.id_of(name)
            if found is not None:
                return found
        return default

    vocab.pad_id = find("<pad>", default=0)
    vocab.eos_id = find("<eos>", "</s>", default=1)
    vocab.bos_id = find("<bos>", "<s>", default=2)
    vocab.unk_id = find("<unk>", default=3)
    return vocab


def load_vocab(checkpoint_dir: Path) -> Vocab:
    """The checkpoint's vocabulary, preferring ``tokenizer.model`` over ``tokenizer.json``."""
    model_file = checkpoint_dir / "tokenizer.model"
    if model_file.exists():
        return vocab_from_sentencepiece(model_file)
    json_file = checkpoint_dir / "tokenizer.json"
    if json_file.exists():
        return vocab_from_tokenizer_json(json_file)
    raise ConversionError(
        f"{checkpoint_dir} has no tokenizer: expected tokenizer.model (sentencepiece) or "
        "tokenizer.json next to config.json."
    )
