"""How close ``app.models.fit_estimate``'s estimate is to what llama.cpp allocates (CPU buffers).

    .venv/bin/python bench/fit_accuracy.py \\
        --full $PALIDESK_BENCH_MODELS/pg2-3b-224-gguf --threads 2

Three parts, each printed as a table and saved to ``bench/results/fit-accuracy-<time>.json``:

- **files**: the catalog's computed file sizes against the real files (the full-size 3B
  folder and the tiny test model, converted and quantized to every type in a temp folder),
  and the catalog's per-tensor types against llama.cpp's own choice (a ``dry_run``
  quantization of the full-size F16 file: it reads no weights).
- **loads**: each model loaded for real through ``Engine`` (tiny F16/Q4_K_M, then the
  full-size Q4_K_M, Q8_0 and F16), with one image encoded so that mtmd reserves its
  compute buffer; the sizes llama.cpp logs (model buffer, KV cache, compute and output
  buffers, mtmd model and compute) against ``estimate(folder, quant, 0)``.
- **shapes** (``--shapes``): the 10B and 28B sizes at 224/448/896 px without their
  weights: "sparse" GGUFs (real header and tensor table, a hole where the data would be)
  loaded with llama.cpp's ``no_alloc``, which sizes every buffer but allocates none; mtmd
  is given a sparse vision file and reserves its buffer at warm-up. Reads no weights.

GPU buffers are not measured here (no GPU on the machines this ran on).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import logging
import re
import struct
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402
from llama_cpp import mtmd_cpp  # noqa: E402
from PIL import Image  # noqa: E402

from app.engine.engine import Engine, EngineConfig  # noqa: E402
from app.engine.llama_library import ensure_backend  # noqa: E402
from app.model_files.gguf_header import read_gguf_header  # noqa: E402
from app.model_files.model_folder import ModelFolder  # noqa: E402
from app.models.catalog import SIZES, VariantDims, find, tensor_nbytes  # noqa: E402
from app.models.fit_estimate import (  # noqa: E402
    ContextNeeds,
    estimate,
    kv_layer_bytes,
    layout_for,
    text_compute_bytes,
    vision_compute_bytes,
)

MIB = 1024**2
TINY = ROOT / "tests" / "fixtures" / "tiny" / "pg2-tiny-224"
ALL_QUANTS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
TINY_DIMS = VariantDims(64, 128, 4, 2, 1, 32, image_size=224, vocab_rows=1920,
                        vision_hidden=32, vision_intermediate=64, vision_layers=2,
                        vision_heads=2)


class LogCapture(logging.Handler):
    """Collects llama.cpp's log lines (routed to "palidesk.llama" by ensure_backend)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> LogCapture:
        log = logging.getLogger("palidesk.llama")
        self._level = log.level
        log.setLevel(logging.DEBUG)
        log.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        log = logging.getLogger("palidesk.llama")
        log.removeHandler(self)
        log.setLevel(self._level)


def parse_sizes(lines: list[str]) -> dict[str, float]:
    """Buffer sizes (MiB) from llama.cpp/mtmd log lines; repeated kinds are summed."""
    patterns = {
        "model": r"\S+ model buffer size =\s*([\d.]+) MiB",
        "kv": r"llama_kv_cache: size =\s*([\d.]+) MiB",
        "compute": r"sched_reserve:\s+\S+ compute buffer size =\s*([\d.]+) MiB",
        "compute_exact": r"~llama_context:\s+\S+ compute buffer size is\s*([\d.]+) MiB",
        "output": r"\S+\s+output buffer size =\s*([\d.]+) MiB",
        "vision_model": r"load_hparams: model size:\s*([\d.]+) MiB",
        "vision_compute": r"reserve_compute_meta:\s+\S+ compute buffer size =\s*([\d.]+) MiB",
    }
    out: dict[str, float] = {}
    for line in lines:
        for key, pattern in patterns.items():
            match = re.search(pattern, line)
            if match:
                out[key] = out.get(key, 0.0) + float(match[1])
    return out


def rel(estimated: float, actual: float) -> float | None:
    return None if not actual else estimated / actual - 1


def fmt(err: float | None) -> str:
    return "   n/a" if err is None else f"{err * 100:+6.2f}%"


# --- files ----------------------------------------------------------------------------


def check_files(full: Path | None, work: Path, threads: int) -> dict:
    from app.convert.converter import convert_checkpoint
    from app.models.quantize import FTYPES, quantize_folder

    result: dict = {"full": [], "tiny": [], "dry_run": []}
    if full is not None:
        entry = find("paligemma2-3b-pt-224")
        for path in sorted(full.glob("*.gguf")):
            kind, quant = path.stem.split("-", 1)
            quant = quant.upper()
            computed = (entry.vision_file_bytes() if kind == "mmproj"
                        else entry.text_file_bytes(quant))
            actual = path.stat().st_size
            result["full"].append({"file": path.name, "computed": computed, "actual": actual,
                                   "error": rel(computed, actual)})
            print(f"files  {path.name:<18} computed {computed:>14,} actual {actual:>14,} "
                  f"{fmt(rel(computed, actual))}")
        source = full / "text-f16.gguf"
        if source.exists():
            ensure_backend()
            for quant in ALL_QUANTS:
                types = dry_run_types(source, FTYPES[quant], threads)
                expected = entry.dims.text_tensors(quant)
                wrong = [n for n, t in types.items() if expected[n].ggml_type.name.upper() != t]
                result["dry_run"].append({"quant": quant, "tensors": len(types),
                                          "mismatches": wrong})
                print(f"types  3B {quant:<7} {len(types)} tensors, "
                      f"{len(wrong)} differ from llama.cpp's dry run")
    tiny = work / "tiny"
    convert_checkpoint(TINY, tiny, "f16")
    for quant in ALL_QUANTS[1:]:
        quantize_folder(tiny, quant, threads=1)
    for path in sorted(tiny.glob("*.gguf")):
        header = read_gguf_header(path)
        actual = sum(tensor_nbytes(t.shape, t.ggml_type) for t in header.tensors.values())
        kind, quant = path.stem.split("-", 1)
        specs = (TINY_DIMS.vision_tensors() if kind == "mmproj"
                 else TINY_DIMS.text_tensors(quant.upper()))
        computed = sum(spec.nbytes for spec in specs.values())
        result["tiny"].append({"file": path.name, "computed": computed, "actual": actual})
        print(f"files  tiny {path.name:<14} tensor bytes computed {computed:>8,} "
              f"actual {actual:>8,} {'exact' if computed == actual else 'DIFFERENT'}")
    return result


def dry_run_types(source: Path, ftype: int, threads: int) -> dict[str, str]:
    """Per-tensor target types from llama.cpp's quantizer without quantizing anything."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.dry_run = True
    with LogCapture() as log:
        status = llama_cpp.llama_model_quantize(
            str(source).encode(), str(source.with_suffix(".unused")).encode(),
            ctypes.byref(params))
    if status != 0:
        raise RuntimeError(f"dry run failed for ftype {ftype}")
    text = "\n".join(log.lines)
    found = re.finditer(
        r"\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+),\s*\n?\s*size =[^\n(]*(?:\((\w+)\))?", text)
    return {m[1]: (m[3] or m[2]).upper() for m in found}


# --- loads ----------------------------------------------------------------------------


def measure_load(folder: Path, quant: str, threads: int) -> dict:
    """Load through Engine, encode one image, unload; compare with the estimate."""
    pair = ModelFolder(folder).resolve(quant)
    engine = Engine()
    start = time.perf_counter()
    with LogCapture() as log:
        engine.load(pair, EngineConfig(threads=threads))
        side = pair.image_size
        engine.image_rows(Image.new("RGB", (side, side), (120, 80, 40)))
        engine.unload()
    seconds = time.perf_counter() - start
    got = parse_sizes(log.lines)
    context = ContextNeeds(pair.image_tokens)
    est = estimate(folder, quant, 0, context)
    layout = layout_for(folder, quant)
    actual = {
        "weights": got.get("model", 0) * MIB,
        "kv": got.get("kv", 0) * MIB,
        "compute": (got.get("compute_exact", got.get("compute", 0)) + got.get("output", 0)) * MIB,
        "vision": (got.get("vision_model", 0) + got.get("vision_compute", 0)) * MIB,
    }
    estimated = {
        "weights": est.weights_cpu,
        "kv": est.kv_cache,
        "compute": est.compute,
        "vision": est.vision,
    }
    actual["total"] = sum(actual.values())
    estimated["total"] = sum(estimated.values())
    errors = {k: rel(estimated[k], actual[k]) for k in actual}
    row = {"folder": str(folder), "quant": quant, "seconds": round(seconds, 1),
           "logged_mib": got, "actual": actual, "estimated": estimated, "errors": errors,
           "estimate_with_margin": est.total_cpu,
           "vision_compute_formula": vision_compute_bytes(layout.vision)}
    print(f"load   {folder.name:<16} {quant:<7} " + " ".join(
        f"{k} {actual[k] / MIB:8.2f}/{estimated[k] / MIB:8.2f} MiB {fmt(errors[k])}"
        for k in actual))
    return row


# --- shapes ---------------------------------------------------------------------------


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def tokenizer_kv_bytes(source: Path) -> list[bytes]:
    """The raw key/value records of every ``tokenizer.*`` key of a GGUF file."""
    records = []
    with source.open("rb") as f:
        f.seek(16)
        (n_kv,) = struct.unpack("<Q", f.read(8))
        for _ in range(n_kv):
            start = f.tell()
            (length,) = struct.unpack("<Q", f.read(8))
            key = f.read(length).decode()
            (vtype,) = struct.unpack("<I", f.read(4))

            def skip(t: int) -> None:
                if t == 8:
                    (n,) = struct.unpack("<Q", f.read(8))
                    f.seek(n, 1)
                else:
                    f.seek(_SCALAR_SIZES[t], 1)

            if vtype == 9:
                item, count = struct.unpack("<IQ", f.read(12))
                if item in _SCALAR_SIZES:
                    f.seek(_SCALAR_SIZES[item] * count, 1)
                else:
                    for _ in range(count):
                        skip(item)
            else:
                skip(vtype)
            end = f.tell()
            if key.startswith("tokenizer."):
                f.seek(start)
                records.append(f.read(end - start))
    return records


def write_sparse_gguf(path: Path, arch: str, kvs: list[bytes],
                      tensors: dict[str, tuple[tuple[int, ...], int]]) -> None:
    """A GGUF whose data region is a hole: real metadata and tensor table, no weights."""
    infos, offset = b"", 0
    for name, (shape, ggml_type) in tensors.items():
        infos += _gguf_string(name) + struct.pack("<I", len(shape))
        infos += b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<IQ", ggml_type, offset)
        offset += -(-tensor_nbytes(shape, ggml_type) // 32) * 32
    kvs = [_gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string(arch),
           *kvs]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    head += b"\0" * (-len(head) % 32)
    with path.open("wb") as f:
        f.write(head)
        f.truncate(len(head) + offset)


def _u32(key: str, value: int) -> bytes:
    return _gguf_string(key) + struct.pack("<II", 4, value)


def _f32(key: str, value: float) -> bytes:
    return _gguf_string(key) + struct.pack("<If", 6, value)


def _bool(key: str, value: bool) -> bytes:
    return _gguf_string(key) + struct.pack("<IB", 7, int(value))


def _str(key: str, value: str) -> bytes:
    return _gguf_string(key) + struct.pack("<I", 8) + _gguf_string(value)


def _f32_array(key: str, values: list[float]) -> bytes:
    return (_gguf_string(key) + struct.pack("<IIQ", 9, 6, len(values))
            + b"".join(struct.pack("<f", v) for v in values))


def sparse_text(path: Path, d: VariantDims, tokenizer: list[bytes]) -> None:
    g = "gemma2."
    kvs = [_u32("general.file_type", 1), _u32(g + "context_length", 8192),
           _u32(g + "embedding_length", d.hidden), _u32(g + "block_count", d.layers),
           _u32(g + "feed_forward_length", d.intermediate),
           _u32(g + "attention.head_count", d.heads),
           _u32(g + "attention.head_count_kv", d.kv_heads),
           _f32(g + "attention.layer_norm_rms_epsilon", 1e-6),
           _u32(g + "attention.key_length", d.head_dim),
           _u32(g + "attention.value_length", d.head_dim),
           _f32(g + "attn_logit_softcapping", 50.0), _f32(g + "final_logit_softcapping", 30.0),
           _u32(g + "attention.sliding_window", d.sliding_window), *tokenizer]
    specs = d.text_tensors("F16")
    write_sparse_gguf(path, "gemma2", kvs,
                      {n: (s.shape, int(s.ggml_type)) for n, s in specs.items()})


def sparse_vision(path: Path, d: VariantDims) -> None:
    v = "clip.vision."
    kvs = [_bool("clip.has_vision_encoder", True), _str("clip.projector_type", "janus_pro"),
           _bool("clip.use_gelu", True), _u32(v + "image_size", d.image_size),
           _u32(v + "patch_size", d.patch), _u32(v + "embedding_length", d.vision_hidden),
           _u32(v + "feed_forward_length", d.vision_intermediate),
           _u32(v + "block_count", d.vision_layers),
           _u32(v + "attention.head_count", d.vision_heads),
           _f32(v + "attention.layer_norm_epsilon", 1e-6), _u32(v + "projection_dim", d.hidden),
           _f32_array(v + "image_mean", [0.5] * 3), _f32_array(v + "image_std", [0.5] * 3)]
    specs = d.vision_tensors()
    write_sparse_gguf(path, "clip", kvs, {n: (s.shape, int(s.ggml_type)) for n, s in specs.items()})


def measure_shape(text: Path, vision: Path, context: ContextNeeds) -> dict[str, float]:
    """Buffer sizes llama.cpp and mtmd would allocate, without reading any weight."""
    mparams = llama_cpp.llama_model_default_params()
    mparams.no_alloc = True
    mparams.load_mode = 0  # no mmap: no_alloc cannot map a file
    mparams.use_extra_bufts = False
    with LogCapture() as log:
        model = llama_cpp.llama_model_load_from_file(str(text).encode(), mparams)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = context.n_ubatch + context.max_new_tokens
        cparams.n_batch = cparams.n_ubatch = context.n_ubatch
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = 1
        if context.outputs is not None:
            cparams.n_outputs_max = context.outputs
        # As the engine's decoder (EngineConfig.flash_attention = False, for determinism).
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        vparams = mtmd_cpp.mtmd_context_params_default()
        vparams.use_gpu = False
        vparams.n_threads = 1
        vparams.warmup = True  # reserve the compute buffer now, without encoding
        mtmd = mtmd_cpp.mtmd_init_from_file(str(vision).encode(), model, vparams)
        if mtmd:
            mtmd_cpp.mtmd_free(mtmd)
        if ctx:
            llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
    return parse_sizes(log.lines)


def check_shapes(work: Path, tokenizer_source: Path) -> list[dict]:
    ensure_backend()
    tokenizer = tokenizer_kv_bytes(tokenizer_source)
    rows = []
    for size, base in SIZES.items():
        for image_size in (224, 448, 896):
            d = dataclasses.replace(base, image_size=image_size)
            text, vision = work / "text.gguf", work / "mmproj.gguf"
            sparse_text(text, d, tokenizer)
            sparse_vision(vision, d)
            entry = find(f"paligemma2-{size}-pt-{image_size}")
            for outputs in (None, 1):
                context = ContextNeeds(d.image_tokens, outputs=outputs)
                got = measure_shape(text, vision, context)
                layout = layout_for(entry, "F16")
                est = {"kv": sum(kv_layer_bytes(layout.text, context)),
                       "compute": text_compute_bytes(layout.text, context),
                       "vision_compute": vision_compute_bytes(layout.vision)}
                act = {k: got.get(k, 0) * MIB for k in est}
                errors = {k: rel(est[k], act[k]) for k in est}
                rows.append({"size": size, "image_size": image_size, "outputs": outputs,
                             "actual": act, "estimated": est, "errors": errors})
                print(f"shape  {size:>3} {image_size} outputs={outputs or 'ubatch':<6} " + " ".join(
                    f"{k} {act[k] / MIB:8.2f}/{est[k] / MIB:8.2f} MiB {fmt(errors[k])}"
                    for k in est))
            text.unlink()
            vision.unlink()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", type=Path, help="full-size 3B-224 model folder")
    parser.add_argument("--quants", default="Q4_K_M,Q8_0,F16",
                        help="full-size loads (empty: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", action="store_true", help="also the 10B/28B shapes")
    parser.add_argument("--skip-loads", action="store_true")
    args = parser.parse_args()
    ensure_backend()
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="fit-accuracy-") as tmp:
        work = Path(tmp)
        results["files"] = check_files(args.full, work, args.threads)
        if not args.skip_loads:
            loads = [measure_load(work / "tiny", q, args.threads) for q in ("F16", "Q4_K_M")]
            if args.full is not None:
                quants = [q for q in args.quants.split(",") if q]
                loads += [measure_load(args.full, q, args.threads) for q in quants]
            results["loads"] = loads
        if args.shapes:
            if args.full is None:
                parser.error("--shapes needs --full (its text file supplies the vocabulary)")
            results["shapes"] = check_shapes(work, args.full / "text-f16.gguf")
    out = BENCH / "results" / f"fit-accuracy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
