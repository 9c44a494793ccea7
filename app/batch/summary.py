"""What a batch did, counted as it goes and told in a few lines at the end."""

from __future__ import annotations

from dataclasses import dataclass, field

_FAILURES_LISTED = 20


@dataclass
class BatchSummary:
    labelled: int = 0  # the model ran and answered
    duplicates: int = 0  # same bytes as an image already done: its record was copied
    skipped: int = 0  # already in the results file (or listed twice)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    seconds: float = 0.0
    # When the first and the latest model run finished (time.monotonic()): the rate
    # between them is the steady one, without model loading or Ray's start-up.
    first_run_at: float | None = None
    last_run_at: float | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    def ran(self, now: float) -> None:
        """One image went through the model (labelled or failed) at ``now``."""
        if self.first_run_at is None:
            self.first_run_at = now
        self.last_run_at = now

    @property
    def steady_rate(self) -> float | None:
        """Images per second after the first one, or None with fewer than 3 runs."""
        runs = self.labelled + self.failed
        if runs < 3 or self.first_run_at is None or self.last_run_at is None:
            return None
        span = self.last_run_at - self.first_run_at
        return (runs - 1) / span if span > 0 else None

    @property
    def touched(self) -> int:
        """Images dealt with so far, whatever became of them."""
        return self.labelled + self.duplicates + self.skipped + self.failed

    def lines(self, results: str) -> list[str]:
        """The summary for a person, naming the results file."""
        rate = (f" ({(self.labelled + self.failed) / self.seconds:.2f} images/s"
                if self.seconds > 0 and self.labelled + self.failed else "")
        steady = self.steady_rate
        if self.failed > self.labelled:
            # Failures are instant (an unreadable file): a rate would describe them, not
            # the model, e.g. "2761 images/s" for a folder of mostly broken files.
            rate = ""
        if rate:
            rate += f"; {steady:.2f} after the first)" if steady else ")"
        out = [
            f"done: {self.labelled} labelled, {self.duplicates} copied from identical images, "
            f"{self.skipped} skipped (already in {results}), {self.failed} failed"
            f" in {self.seconds:.1f} s{rate}",
        ]
        if self.failures:
            out.append("failed:")
            out += [f"  {image}: {reason}" for image, reason in
                    self.failures[:_FAILURES_LISTED]]
            if self.failed > _FAILURES_LISTED:
                out.append(f"  ... and {self.failed - _FAILURES_LISTED} more (the lines "
                           f'with "error" in {results})')
        return out
