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

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def touched(self) -> int:
        """Images dealt with so far, whatever became of them."""
        return self.labelled + self.duplicates + self.skipped + self.failed

    def lines(self, results: str) -> list[str]:
        """The summary for a person, naming the results file."""
        rate = (f" ({(self.labelled + self.failed) / self.seconds:.2f} images/s)"
                if self.seconds > 0 and self.labelled + self.failed else "")
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
