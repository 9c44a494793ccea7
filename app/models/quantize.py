"""``palidesk quantize``: make a quantized text GGUF with llama.cpp's own quantizer.

Only the text model is quantized. The vision file stays F16: its parity with the
reference was measured at F16, and it is small next to the decoder.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import queue
import re
import signal
import sys
from pathlib import Path

import llama_cpp

from app.atomic_files import atomic_path
from app.convert.converter import text_file_name
from app.convert.gguf_output import disk_error
from app.engine.llama_library import default_threads, ensure_backend
from app.errors import QuantizationError
from app.model_files.manifest import describe_file, write_manifest
from app.model_files.model_folder import QUALITY_ORDER, ModelFolder
from app.model_files.verification import record_verified
from app.progress import CancelFlag, ProgressCallback, ProgressEvent, no_progress

FTYPES: dict[str, int] = {
    "Q2_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K,
    "Q3_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_M,
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q6_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
    "BF16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
}
# Quantize from the most precise file present.
_SOURCE_ORDER = ("F32", "BF16", "F16")
# llama.cpp logs one line per tensor: "[  12/ 291]   blk.0.attn_q.weight - [...]"
_TENSOR_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")


class _ProgressFromLog(logging.Handler):
    """Turns the quantizer's per-tensor log lines into progress events.

    To see those lines the llama.cpp logger is opened to every level while quantizing;
    only what would have been shown anyway (``shown_from``: everything with -v, warnings
    otherwise) is passed on, so ~170 lines of llama.cpp's log stay out of the terminal.
    """

    def __init__(self, progress: ProgressCallback, logger: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.progress = progress
        self.shown_from = logger.getEffectiveLevel()
        self.parent = logger.parent

    def emit(self, record: logging.LogRecord) -> None:
        match = _TENSOR_LINE.search(record.getMessage())
        if match:
            done, total, name = int(match[1]), int(match[2]), match[3]
            self.progress(ProgressEvent("quantize", done, total, name))
        if record.levelno >= self.shown_from and self.parent is not None:
            self.parent.handle(record)


def _run_quantizer(source: Path, target: Path, ftype: int, threads: int,
                   progress: ProgressCallback) -> int:
    """Call llama.cpp's quantizer here, turning its per-tensor log lines into progress."""
    ensure_backend()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    llama_log = logging.getLogger("palidesk.llama")
    handler = _ProgressFromLog(progress, llama_log)
    previous = llama_log.level, llama_log.propagate
    llama_log.addHandler(handler)
    llama_log.setLevel(logging.DEBUG)
    llama_log.propagate = False  # the handler passes on what should be shown
    try:
        return int(llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)))
    finally:
        llama_log.removeHandler(handler)
        llama_log.setLevel(previous[0])
        llama_log.propagate = previous[1]


def _child_main(source: str, target: str, ftype: int, threads: int, events,
                verbose: bool = False) -> None:
    """In a child process: quantize and send progress and the status back."""
    # Ctrl+C reaches the whole process group; the parent decides (it terminates us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    def send(event: ProgressEvent) -> None:
        events.put(("progress", event))

    events.put(("status", _run_quantizer(Path(source), Path(target), ftype, threads, send)))


def _run_quantizer_cancellable(source: Path, target: Path, ftype: int, threads: int,
                               progress: ProgressCallback, cancel: CancelFlag) -> int:
    """The quantizer in a child process, so that Cancel stops it at once.

    llama_model_quantize cannot be interrupted (a 3B Q4_K_M takes ~3 minutes on 2 cores);
    terminating a child process is the only clean way to honour a cancel.
    """
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    child = context.Process(target=_child_main, name="palidesk-quantize",
                            args=(str(source), str(target), ftype, threads, events,
                                  logging.getLogger().getEffectiveLevel() <= logging.DEBUG),
                            daemon=True)
    child.start()
    status: int | None = None
    try:
        while status is None:
            try:
                kind, value = events.get(timeout=0.2)
            except queue.Empty:
                if not child.is_alive() and events.empty():
                    break  # the child died without a status (crash, killed)
                kind, value = "idle", None
            if kind == "progress":
                progress(value)
            elif kind == "status":
                status = int(value)
            if cancel.cancelled:
                child.terminate()
                child.join()
                cancel.check("The quantization")
    finally:
        child.join(timeout=30)
        events.close()
        events.join_thread()
    return -1 if status is None else status


def quantize_folder(
    folder: Path,
    type_: str,
    *,
    threads: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelFlag | None = None,
) -> Path:
    """Write ``text-<type>.gguf`` into ``folder`` and record it in the manifest.

    With a ``cancel`` flag the quantizer runs in a child process and stops as soon as
    the flag is set (nothing is left behind); without one it runs in this process.
    """
    target_type = type_.upper()
    if target_type not in FTYPES:
        raise QuantizationError(
            f"Unknown quantization {type_!r}; choose one of {', '.join(FTYPES)}."
        )
    model = ModelFolder(folder)
    sources = [t for t in _SOURCE_ORDER if t in model.text_types()]
    if not sources:
        raise QuantizationError(
            f"{folder} has no unquantized text file (F32, BF16 or F16) to quantize from; "
            "convert the checkpoint again."
        )
    source_entry = model.manifest.file("text", sources[0])
    assert source_entry is not None
    source = Path(folder) / source_entry.name
    target = Path(folder) / text_file_name(target_type)
    if target == source:
        raise QuantizationError(f"{target.name} already exists: it is the source file.")

    threads = threads or default_threads()
    try:
        with atomic_path(target, reuse_leftover=True) as temp:
            if cancel is None:
                status = _run_quantizer(source, temp, FTYPES[target_type], threads, progress)
            else:
                cancel.check("The quantization")
                status = _run_quantizer_cancellable(source, temp, FTYPES[target_type],
                                                    threads, progress, cancel)
            if status != 0 or not temp.exists():
                raise QuantizationError(
                    f"llama.cpp could not quantize {source.name} to {target_type} "
                    "(see the log for details; a full disk is a common cause)."
                )
    except OSError as exc:
        raise disk_error(exc, target) from exc
    entry = describe_file(target, "text", target_type)
    model.manifest.put_file(entry)
    model.manifest.files.sort(
        key=lambda f: (f.role, QUALITY_ORDER.index(f.type) if f.type in QUALITY_ORDER else 99)
    )
    write_manifest(Path(folder), model.manifest)
    record_verified(Path(folder), entry)
    return target
