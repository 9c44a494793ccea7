"""The terminal progress bar of a batch (tqdm: rate and time left).

Images found already done are taken off the total instead of counted as progress, so
the rate and the time left describe real model work, not instant skips.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class BatchProgress:
    def __init__(self, total: int | None, enabled: bool | None = None) -> None:
        # enabled=None: only when stderr is a terminal (logs and CI get the summary only).
        self._bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True,
                         disable=not sys.stderr.isatty() if enabled is None else not enabled,
                         smoothing=0.1)

    def advance(self) -> None:
        """One image went through the model (labelled or failed)."""
        self._bar.update(1)

    def skip(self) -> None:
        """One image needed no model run."""
        if self._bar.total:
            self._bar.total -= 1
        self._bar.refresh()

    def write(self, line: str) -> None:
        """Print a line to stderr without breaking the bar."""
        self._bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()
