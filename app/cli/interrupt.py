"""Ctrl+C in the terminal: a cancel flag, not an exception thrown into llama.cpp.

Python raises KeyboardInterrupt wherever the main thread next runs Python code, and
during a generation that is inside one of llama.cpp's ctypes callbacks (the abort check
it calls at every graph node, the log callback), where the exception is printed as
"Exception ignored" and lost: the run went on to the end. So while a long operation
runs, the first Ctrl+C only sets a flag that the engine, the quantizer and the batch
loop check; the caller then stops and exits with 130. A second Ctrl+C raises at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from app.progress import CancelFlag

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells expect of a program stopped by Ctrl+C


@contextmanager
def cancel_on_interrupt() -> Iterator[CancelFlag]:
    """Yield a CancelFlag that Ctrl+C sets while the block runs (main thread only)."""
    flag = CancelFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals are only delivered to the main thread
        return

    def on_interrupt(_signum: int, _frame: FrameType | None) -> None:
        if flag.cancelled:
            raise KeyboardInterrupt
        flag.cancel()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
