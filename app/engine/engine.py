"""The PaliGemma 2 runtime on unmodified llama.cpp (through llama-cpp-python's C API).

How one task runs (the design doc, §3):
1. The image is resized like the reference and encoded by mtmd (SigLIP + our janus_pro
   projector), giving rows the decoder takes as is. Rows are cached per image.
2. The prefix — image rows, BOS, prompt, "\\n" — is built as ONE batch of embeddings
   (text rows looked up from the GGUF) and decoded with causal attention OFF: PaliGemma's
   prefix attends to itself in both directions. Two batches, or a causal prefix, give
   measurably different outputs.
3. Causal attention goes back on and tokens are generated one by one.

One Engine is owned by one thread; ``CancelFlag.cancel()`` may be called from any other.
"""

from __future__ import annotations

import codecs
import ctypes
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import mtmd_cpp
from PIL import Image

from app.engine.decode_threads import DecodeThreadChooser
from app.engine.embedding_cache import ImageEmbeddingCache
from app.engine.events import GenerationOptions, ResultEvent, Timings, TokenEvent
from app.engine.image_input import PreparedImage, prepare_image
from app.engine.limits import MAX_NEW_TOKENS
from app.engine.llama_library import (
    default_threads,
    ensure_backend,
    supports_gpu_offload,
    use_extra_buffer_types,
)
from app.engine.token_embeddings import TokenEmbeddingTable
from app.errors import EngineError
from app.model_files.model_folder import ModelPair
from app.model_files.verification import verify_files
from app.progress import CancelFlag

ImageInput = str | Path | Image.Image | PreparedImage

# The context is sized for the largest "Max new tokens" the settings allow, so raising
# the setting never needs a reload. With the prefix this is 2560 (224 px), 3328 (448 px)
# and 6400 (896 px) positions of the model's 8192; at 896 px the ceiling would be 3840.
MAX_NEW_TOKENS_LIMIT = MAX_NEW_TOKENS  # the settings allow no more (app/engine/limits.py)


@dataclass(frozen=True)
class EngineConfig:
    """How to load a model. ``gpu_layers``: -1 = all layers, 0 = CPU only."""

    gpu_layers: int = 0
    threads: int | None = None
    max_prompt_tokens: int = 256
    max_new_tokens_limit: int = MAX_NEW_TOKENS_LIMIT
    # Off: ggml's CPU flash-attention kernel makes results depend on the thread count
    # (a 2000-token greedy caption on the tiny model differed between 1 and 2 threads
    # from token 879; tests/test_determinism.py), and
    # the decode thread count follows the machine's load, so the same command could give
    # another answer. Off, attention is computed in F32 the same way for any thread count;
    # measured cost: docs/benchmarks.md ("Determinism"). None = llama.cpp decides (on).
    flash_attention: bool | None = False
    vision_flash_attention: bool | None = None
    kv_cache_f32: bool = False


class Engine:
    """Loads one text+vision pair and runs tasks on it."""

    def __init__(self, cache: ImageEmbeddingCache | None = None) -> None:
        self.cache = cache if cache is not None else ImageEmbeddingCache()
        self.pair: ModelPair | None = None
        self.config = EngineConfig()
        self._model: llama_cpp.llama_model_p | None = None
        self._ctx: llama_cpp.llama_context_p | None = None
        self._mtmd: mtmd_cpp.mtmd_context_p | None = None
        self._vocab: llama_cpp.llama_vocab_p | None = None
        self._table: TokenEmbeddingTable | None = None
        self._step_batch: llama_cpp.llama_batch | None = None
        self._cancel = CancelFlag()
        self._interrupt: BaseException | None = None
        # Kept on self: ctypes callbacks must outlive the C side that calls them.
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)

    def _should_abort(self, _data: object) -> bool:
        """ggml's abort check, called at every graph node on the thread that decodes.

        An exception cannot cross the C frames above it: ctypes would print "Exception
        ignored" and the decode would go on. So anything raised here (Ctrl+C's
        KeyboardInterrupt lands here most of the time) aborts the decode and is raised
        again by ``_decode`` once llama.cpp has returned.
        """
        try:
            return self._cancel.cancelled
        except BaseException as exc:
            self._interrupt = exc
            return True

    def _decode(self, batch: llama_cpp.llama_batch) -> int:
        """``llama_decode``; 2 = aborted. Re-raises what the abort check caught."""
        self._interrupt = None
        status = llama_cpp.llama_decode(self._ctx, batch)
        if self._interrupt is not None:
            interrupt, self._interrupt = self._interrupt, None
            raise interrupt
        return int(status)

    # --- loading -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._ctx is not None

    def load(self, pair: ModelPair, config: EngineConfig | None = None) -> None:
        """Load ``pair``; replaces whatever was loaded. Raises EngineError."""
        self.unload()
        # A file damaged since it was written would load and answer "<pad><pad>".
        verify_files(pair.folder, (pair.text.path.name, pair.vision.path.name))
        ensure_backend()
        config = config or EngineConfig()
        threads = config.threads or default_threads()
        gpu_layers = config.gpu_layers if supports_gpu_offload() else 0
        try:
            mparams = llama_cpp.llama_model_default_params()
            mparams.n_gpu_layers = 10_000 if gpu_layers < 0 else gpu_layers
            mparams.use_extra_bufts = use_extra_buffer_types()
            self._model = llama_cpp.llama_model_load_from_file(
                str(pair.text.path).encode(), mparams
            )
            if not self._model:
                raise EngineError(f"llama.cpp could not load {pair.text.path.name}.")
            self._vocab = llama_cpp.llama_model_get_vocab(self._model)
            n_ubatch = pair.image_tokens + config.max_prompt_tokens
            cparams = llama_cpp.llama_context_default_params()
            cparams.n_ctx = n_ubatch + config.max_new_tokens_limit
            # The non-causal prefix must fit in one micro-batch, or llama.cpp asserts.
            cparams.n_batch = n_ubatch
            cparams.n_ubatch = n_ubatch
            cparams.n_seq_max = 1
            # Only the last row's logits are ever read; reserving one output row instead
            # of one per prefix token saves n_ubatch x vocab x 4 bytes (0.49 GiB at 224 px).
            cparams.n_outputs_max = 1
            cparams.n_threads = threads
            cparams.n_threads_batch = threads
            cparams.abort_callback = self._abort_cb
            cparams.flash_attn_type = _flash_type(config.flash_attention)
            if config.kv_cache_f32:
                cparams.type_k = cparams.type_v = llama_cpp.GGML_TYPE_F32
            self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
            if not self._ctx:
                raise EngineError("llama.cpp could not create a context (out of memory?).")
            vparams = mtmd_cpp.mtmd_context_params_default()
            vparams.use_gpu = gpu_layers != 0
            vparams.n_threads = threads
            vparams.print_timings = False
            vparams.warmup = False
            vparams.flash_attn_type = _flash_type(config.vision_flash_attention)
            self._mtmd = mtmd_cpp.mtmd_init_from_file(
                str(pair.vision.path).encode(), self._model, vparams
            )
            if not self._mtmd:
                raise EngineError(f"mtmd could not load {pair.vision.path.name}.")
            self._table = TokenEmbeddingTable(pair.text)
            self._step_batch = llama_cpp.llama_batch_init(1, 0, 1)
        except BaseException:
            self.unload()
            raise
        self.pair = pair
        self.config = dataclasses.replace(config, gpu_layers=gpu_layers, threads=threads)

    def unload(self) -> None:
        """Free every llama.cpp/mtmd object (safe to call twice)."""
        if self._mtmd:
            mtmd_cpp.mtmd_free(self._mtmd)
        if self._step_batch is not None:
            llama_cpp.llama_batch_free(self._step_batch)
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        if self._model:
            llama_cpp.llama_model_free(self._model)
        if self._table is not None:
            self._table.close()
        self._mtmd = self._ctx = self._model = self._vocab = None
        self._table = self._step_batch = None
        self.pair = None

    close = unload

    def __del__(self) -> None:
        self.unload()

    def _require(self) -> ModelPair:
        if self.pair is None or not self._ctx:
            raise EngineError("No model is loaded.")
        return self.pair

    # --- inputs ------------------------------------------------------------------------

    def prepare(self, image: ImageInput) -> PreparedImage:
        if isinstance(image, PreparedImage):
            return image
        return prepare_image(image, self._require().image_size)

    def prompt_tokens(self, prompt: str) -> list[int]:
        """BOS + the tokens of ``prompt + "\\n"``, as the reference processor makes them."""
        self._require()
        text = (prompt + "\n").encode("utf-8")
        capacity = len(text) + 8
        out = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, text, len(text), out, capacity, False, True)
        if n < 0:
            raise EngineError("The prompt could not be tokenized.")
        return [int(llama_cpp.llama_vocab_bos(self._vocab)), *out[:n]]

    def image_rows(self, image: ImageInput) -> tuple[np.ndarray, float, bool]:
        """The decoder's input rows for ``image``: (rows, encode seconds, from cache)."""
        pair = self._require()
        prepared = self.prepare(image)
        key = f"{pair.pair_id}:{pair.vision.path.name}"
        cached = self.cache.get(key, prepared.digest)
        if cached is not None:
            return cached, 0.0, True
        start = time.perf_counter()
        rows = self._encode(prepared)
        seconds = time.perf_counter() - start
        self.cache.put(key, prepared.digest, rows)
        return rows, seconds, False

    def _encode(self, prepared: PreparedImage) -> np.ndarray:
        pair = self._require()
        side = prepared.side
        pixels = (ctypes.c_uint8 * len(prepared.rgb)).from_buffer_copy(prepared.rgb)
        bitmap = mtmd_cpp.mtmd_bitmap_init(side, side, pixels)
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            marker = mtmd_cpp.mtmd_default_marker()
            text = mtmd_cpp.mtmd_input_text()
            text.text, text.text_len = marker, len(marker)
            # add_special would put BOS *before* the image; we place it ourselves.
            text.add_special, text.parse_special = False, True
            bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
            if mtmd_cpp.mtmd_tokenize(self._mtmd, chunks, ctypes.byref(text), bitmaps, 1) != 0:
                raise EngineError("mtmd could not prepare the image.")
            for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
                chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
                kind = mtmd_cpp.mtmd_input_chunk_get_type(chunk)
                if kind != mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    continue
                n_tokens = mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk)
                if n_tokens != pair.image_tokens:
                    raise EngineError(
                        f"The vision model produced {n_tokens} image tokens, expected "
                        f"{pair.image_tokens}."
                    )
                if mtmd_cpp.mtmd_encode_chunk(self._mtmd, chunk) != 0:
                    raise EngineError("The vision encoder failed on this image.")
                n_embd = llama_cpp.llama_model_n_embd(self._model)
                ptr = mtmd_cpp.mtmd_get_output_embd(self._mtmd)
                return np.ctypeslib.as_array(ptr, shape=(n_tokens * n_embd,)).reshape(
                    n_tokens, n_embd
                ).copy()
            raise EngineError("mtmd produced no image chunk.")
        finally:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
            mtmd_cpp.mtmd_bitmap_free(bitmap)

    # --- decoding ----------------------------------------------------------------------

    def _logits(self) -> np.ndarray:
        n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,))

    def _prefill(self, image_rows: np.ndarray, prompt_ids: list[int]) -> np.ndarray | None:
        """Decode image rows + prompt as one non-causal batch. None if cancelled."""
        assert self._table is not None
        rows = np.ascontiguousarray(
            np.concatenate([image_rows, self._table.rows(prompt_ids)]), dtype=np.float32
        )
        n, n_embd = rows.shape
        limit = self._require().image_tokens + self.config.max_prompt_tokens
        if n > limit:
            raise EngineError(
                f"The prompt is too long: {n - image_rows.shape[0]} tokens, at most "
                f"{self.config.max_prompt_tokens}."
            )
        batch = llama_cpp.llama_batch_init(n, n_embd, 1)
        try:
            batch.n_tokens = n
            ctypes.memmove(batch.embd, rows.ctypes.data, rows.nbytes)
            for i in range(n):
                batch.pos[i] = i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            batch.logits[n - 1] = 1
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)
            llama_cpp.llama_set_causal_attn(self._ctx, False)
            status = self._decode(batch)
        finally:
            llama_cpp.llama_set_causal_attn(self._ctx, True)
            llama_cpp.llama_batch_free(batch)
        if status == 2:  # aborted through the abort callback
            return None
        if status != 0:
            raise EngineError(f"llama.cpp failed to process the prompt (code {status}).")
        return self._logits()

    def _step(self, token: int, pos: int) -> np.ndarray | None:
        batch = self._step_batch
        assert batch is not None
        batch.n_tokens = 1
        batch.token[0] = token
        batch.pos[0] = pos
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = 1
        status = self._decode(batch)
        if status == 2:
            return None
        if status != 0:
            raise EngineError(f"llama.cpp failed to generate (code {status}).")
        return self._logits()

    def piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(n, 0)]

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    # --- public tasks --------------------------------------------------------------------

    def generate(
        self,
        image: ImageInput,
        prompt: str,
        options: GenerationOptions | None = None,
        cancel: CancelFlag | None = None,
    ) -> Iterator[TokenEvent | ResultEvent]:
        """Stream a TokenEvent per generated token, then one ResultEvent.

        Cancelling (``cancel.cancel()`` from any thread) stops before the next token and
        still yields the ResultEvent with what was generated.
        """
        options = options or GenerationOptions()
        self._require()
        cancel = cancel or CancelFlag()
        self._cancel = cancel
        start = time.perf_counter()
        max_new = options.max_new_tokens
        if max_new > self.config.max_new_tokens_limit:  # never cap silently
            raise EngineError(
                f"At most {self.config.max_new_tokens_limit} new tokens can be generated "
                f"with this model as loaded; {max_new} were asked for.")
        prepared = self.prepare(image)
        rows, encode_s, cached = self.image_rows(prepared)
        prompt_ids = self.prompt_tokens(prompt)
        prefill_start = time.perf_counter()
        logits = None if cancel.cancelled else self._prefill(rows, prompt_ids)
        prefill_s = time.perf_counter() - prefill_start
        # A negative seed asks for a new random one (llama.cpp's convention for -1).
        rng = np.random.default_rng(options.seed if options.seed >= 0 else None)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tokens: list[int] = []
        text_parts: list[str] = []
        first_token_at = decode_end = time.perf_counter()
        pos = rows.shape[0] + len(prompt_ids)
        stop = "cancelled"
        threads = self.config.threads or 1
        chooser = DecodeThreadChooser(threads)
        current = threads
        llama_cpp.llama_set_n_threads(self._ctx, threads, threads)
        while logits is not None and not cancel.cancelled:
            token = choose_token(logits, options, rng)
            tokens.append(token)
            now = time.perf_counter()
            if len(tokens) == 1:
                first_token_at = now
            decode_end = now
            text = decoder.decode(self.piece(token))
            text_parts.append(text)
            yield TokenEvent(token, text, len(tokens) - 1)
            if options.stop_at_eos and self.is_end(token):
                stop = "eos"
                break
            if len(tokens) >= max_new:
                stop = "max_tokens"
                break
            wanted = chooser.next_threads()
            if wanted != current:
                # Prefill keeps all threads (n_threads_batch); only decoding changes.
                llama_cpp.llama_set_n_threads(self._ctx, wanted, threads)
                current = wanted
            step_start = time.perf_counter()
            logits = self._step(token, pos)
            chooser.record(current, time.perf_counter() - step_start)
            pos += 1
        text_parts.append(decoder.decode(b"", final=True))
        decode_s = decode_end - first_token_at
        timings = Timings(
            image_encode_s=encode_s,
            prefill_s=prefill_s,
            first_token_s=(first_token_at - start) if tokens else 0.0,
            decode_s=decode_s,
            decode_tokens_per_s=(len(tokens) - 1) / decode_s if decode_s > 0 else 0.0,
            prefix_tokens=rows.shape[0] + len(prompt_ids),
            image_cached=cached,
        )
        yield ResultEvent(tokens, "".join(text_parts), prompt, prompt_ids, stop, timings,
                          prepared.original_size)

    def run(self, image: ImageInput, prompt: str,
            options: GenerationOptions | None = None) -> ResultEvent:
        """``generate`` without streaming: the final result."""
        result = None
        for event in self.generate(image, prompt, options):
            if isinstance(event, ResultEvent):
                result = event
        assert result is not None
        return result

    def forced_logits(self, image: ImageInput, prompt: str, tokens: list[int]) -> np.ndarray:
        """Logits before each of ``tokens`` (teacher forcing): shape [len(tokens)+1, vocab].

        Row 0 is the first step (after the prefix); row i+1 follows feeding tokens[i].
        Used by parity tests and to measure quantized models' agreement.
        """
        rows, _, _ = self.image_rows(image)
        prompt_ids = self.prompt_tokens(prompt)
        self._cancel = CancelFlag()
        logits = self._prefill(rows, prompt_ids)
        assert logits is not None
        out = [logits.copy()]
        pos = rows.shape[0] + len(prompt_ids)
        for token in tokens:
            step = self._step(token, pos)
            assert step is not None
            out.append(step.copy())
            pos += 1
        return np.stack(out)


def _flash_type(flag: bool | None) -> int:
    if flag is None:
        return llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    if flag:
        return llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    return llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED


def choose_token(logits: np.ndarray, options: GenerationOptions,
                 rng: np.random.Generator) -> int:
    """Greedy at temperature 0 (the reference), else top-k / top-p sampling."""
    if options.temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / options.temperature
    order = np.argsort(-scaled)
    if options.top_k > 0:
        order = order[: options.top_k]
    probs = np.exp(scaled[order] - scaled[order[0]])
    probs /= probs.sum()
    if options.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(probs), options.top_p) + 1)
        order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
    return int(rng.choice(order, p=probs))
