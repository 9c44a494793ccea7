"""``palidesk convert``: a Hugging Face PaliGemma 2 checkpoint -> text + vision GGUF pair."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gguf import GGUFWriter, LlamaFileType

from app import __version__
from app.convert.checkpoint import Checkpoint, open_checkpoint
from app.convert.gguf_output import disk_error, write_gguf
from app.convert.tensor_plan import OUT_TYPES, check_tensors, text_plan, vision_plan
from app.convert.vocab import Vocab, load_vocab
from app.errors import ConversionError, ModelFolderError
from app.model_files import gguf_keys as keys
from app.model_files.hf_cache import repo_id_of_snapshot
from app.model_files.manifest import (
    MANIFEST_NAME,
    Manifest,
    describe_file,
    read_manifest,
    write_manifest,
)
from app.model_files.verification import record_verified
from app.progress import CancelFlag, ProgressCallback, no_progress

CONVERTER_VERSION = f"palidesk-{__version__}/1"
_FILE_TYPES = {"f32": LlamaFileType.ALL_F32, "f16": LlamaFileType.MOSTLY_F16,
               "bf16": LlamaFileType.MOSTLY_BF16}
# SigLIP's normalisation in every PaliGemma checkpoint: (x - 0.5) / 0.5.
IMAGE_MEAN = [0.5, 0.5, 0.5]
IMAGE_STD = [0.5, 0.5, 0.5]


def text_file_name(type_: str) -> str:
    return f"text-{type_.lower()}.gguf"


def vision_file_name(type_: str) -> str:
    return f"mmproj-{type_.lower()}.gguf"


def pair_id(ck: Checkpoint) -> str:
    """An id shared by the two files of one conversion, derived from the source so that
    converting the same checkpoint twice gives the same id."""
    digest = hashlib.sha256(json.dumps(ck.config, sort_keys=True).encode())
    for name in sorted(ck.files.entries):
        entry = ck.files.entries[name]
        digest.update(f"{name}:{entry.dtype}:{entry.shape}:{entry.end - entry.begin}".encode())
    digest.update(ck.read("proj.linear.bias").tobytes())
    return digest.hexdigest()[:16]


def _common_metadata(w: GGUFWriter, ck: Checkpoint, pid: str, role: str, name: str) -> None:
    w.add_string(keys.ROLE, role)
    w.add_string(keys.PAIR_ID, pid)
    w.add_uint32(keys.IMAGE_SIZE, ck.vision.image_size)
    w.add_uint32(keys.IMAGE_TOKENS, ck.vision.image_tokens)
    w.add_uint32(keys.IMAGE_TOKEN_ID, ck.image_token_id)
    w.add_uint32(keys.TEXT_HIDDEN, ck.text.hidden)
    w.add_string(keys.CONVERTER_VERSION, CONVERTER_VERSION)
    w.add_string(keys.SOURCE, name)


def _text_metadata(ck: Checkpoint, vocab: Vocab, outtype: str, pid: str, name: str):
    t = ck.text

    def add(w: GGUFWriter) -> None:
        w.add_name(f"PaliGemma 2 text ({name})")
        w.add_file_type(_FILE_TYPES[outtype])
        w.add_context_length(t.context_length)
        w.add_embedding_length(t.hidden)
        w.add_block_count(t.layers)
        w.add_feed_forward_length(t.intermediate)
        w.add_head_count(t.heads)
        w.add_head_count_kv(t.kv_heads)
        w.add_layer_norm_rms_eps(t.rms_eps)
        w.add_key_length(t.head_dim)
        w.add_value_length(t.head_dim)
        w.add_rope_freq_base(t.rope_theta)
        w.add_attn_logit_softcapping(t.attn_softcap)
        w.add_final_logit_softcapping(t.final_softcap)
        w.add_sliding_window(t.sliding_window)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(vocab.tokens)
        w.add_token_scores(vocab.scores)
        w.add_token_types(vocab.types)
        w.add_bos_token_id(vocab.bos_id)
        w.add_eos_token_id(vocab.eos_id)
        w.add_pad_token_id(vocab.pad_id)
        w.add_unk_token_id(vocab.unk_id)
        # The engine places BOS itself (after the image rows), so llama.cpp must not.
        w.add_add_bos_token(False)
        w.add_add_eos_token(False)
        w.add_add_space_prefix(vocab.add_space_prefix)
        _common_metadata(w, ck, pid, "text", name)

    return add


def _vision_metadata(ck: Checkpoint, outtype: str, pid: str, name: str):
    v = ck.vision

    def add(w: GGUFWriter) -> None:
        w.add_name(f"PaliGemma 2 vision ({name})")
        w.add_file_type(_FILE_TYPES[outtype])
        w.add_bool("clip.has_vision_encoder", True)
        w.add_string("clip.projector_type", "janus_pro")
        # Without it mtmd silently runs the ViT with gelu_quick.
        w.add_bool("clip.use_gelu", True)
        w.add_uint32("clip.vision.image_size", v.image_size)
        w.add_uint32("clip.vision.patch_size", v.patch)
        w.add_uint32("clip.vision.embedding_length", v.hidden)
        w.add_uint32("clip.vision.feed_forward_length", v.intermediate)
        w.add_uint32("clip.vision.block_count", v.layers)
        w.add_uint32("clip.vision.attention.head_count", v.heads)
        w.add_float32("clip.vision.attention.layer_norm_epsilon", v.eps)
        w.add_uint32("clip.vision.projection_dim", ck.text.hidden)
        w.add_array("clip.vision.image_mean", IMAGE_MEAN)
        w.add_array("clip.vision.image_std", IMAGE_STD)
        _common_metadata(w, ck, pid, "vision", name)

    return add


def _existing_manifest(out_dir: Path, pid: str) -> Manifest | None:
    """The folder's manifest if it holds this same checkpoint; refuse a different one."""
    if not (out_dir / MANIFEST_NAME).exists():
        return None
    try:
        previous = read_manifest(out_dir)
    except ModelFolderError:
        return None  # a damaged manifest is rewritten
    if previous.pair_id != pid:
        raise ConversionError(
            f"{out_dir} already holds another model ({previous.source.get('name')}). "
            "Choose an empty folder."
        )
    return previous


def convert_checkpoint(
    hf_dir: Path,
    out_dir: Path,
    outtype: str = "f16",
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelFlag | None = None,
    source_name: str | None = None,
) -> Manifest:
    """Convert ``hf_dir`` into ``out_dir``; returns the manifest that was written.

    ``source_name`` is what the model is called (a repository id such as
    google/paligemma2-3b-mix-224): recorded in the manifest and the GGUF files, shown by
    the window, and read to tell a pretrained model from a mix. Default: the name of the
    repository when ``hf_dir`` is a Hugging Face cache snapshot, else the folder's name.
    """
    outtype = outtype.lower()
    if outtype not in OUT_TYPES:
        raise ConversionError(f"Unknown output type {outtype!r}: use f32, f16 or bf16.")
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    name = source_name or repo_id_of_snapshot(hf_dir) or hf_dir.resolve().name
    with open_checkpoint(hf_dir) as ck:
        check_tensors(ck)
        vocab = load_vocab(hf_dir).padded_to(ck.text.vocab_rows)
        if vocab.tokens[ck.image_token_id] != "<image>":
            raise ConversionError(
                f"Token {ck.image_token_id} is {vocab.tokens[ck.image_token_id]!r}, not "
                "<image>: the tokenizer does not belong to this checkpoint."
            )
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(exc, out_dir) from exc
        pid = pair_id(ck)
        previous = _existing_manifest(out_dir, pid)
        text_path = out_dir / text_file_name(outtype)
        vision_path = out_dir / vision_file_name(outtype)
        write_gguf(text_path, "gemma2", _text_metadata(ck, vocab, outtype, pid, name),
                   text_plan(ck, outtype), progress=progress, cancel=cancel,
                   stage="convert text")
        write_gguf(vision_path, "clip", _vision_metadata(ck, outtype, pid, name),
                   vision_plan(ck, outtype), progress=progress, cancel=cancel,
                   stage="convert vision")
        manifest = Manifest(
            source={"path": str(hf_dir.resolve()), "name": name,
                    "tokenizer": vocab.source},
            image_size=ck.vision.image_size,
            image_tokens=ck.vision.image_tokens,
            pair_id=pid,
            converter_version=CONVERTER_VERSION,
            text={"hidden": ck.text.hidden, "layers": ck.text.layers,
                  "heads": ck.text.heads, "kv_heads": ck.text.kv_heads,
                  "head_dim": ck.text.head_dim, "vocab": ck.text.vocab_rows,
                  "sliding_window": ck.text.sliding_window},
            vision={"hidden": ck.vision.hidden, "layers": ck.vision.layers,
                    "patch": ck.vision.patch},
            # Files of an earlier conversion of the same checkpoint (other types) stay.
            files=previous.files if previous else [],
        )
    written = [describe_file(text_path, "text", outtype.upper()),
               describe_file(vision_path, "vision", outtype.upper())]
    for entry in written:
        manifest.put_file(entry)
    write_manifest(out_dir, manifest)
    for entry in written:
        record_verified(out_dir, entry)
    return manifest
