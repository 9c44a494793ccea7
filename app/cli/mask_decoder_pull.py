"""Downloading the mask decoder from the command line: ``palidesk masks pull`` and the
offer that ``palidesk models pull`` makes with the first model. Its own module so that
masks_command and models_command do not import each other."""

from __future__ import annotations

import sys
from pathlib import Path


def pull_decoder(models_dir: Path) -> Path:
    """Download the decoder with progress on stderr (kept if already there)."""
    from app.cli.progress_printer import transfer_printer
    from app.models.mask_decoder import decoder_url, download_decoder

    print(f"mask decoder: {decoder_url()}", file=sys.stderr)
    with transfer_printer() as printer:
        return download_decoder(models_dir, progress=printer)
