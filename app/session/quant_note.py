"""The note under Settings' quantization: how the *selected* quantization runs here.

The automatic choice explains itself (``FitChoice.sentence``); a quantization the user
picked gets its own sentence, so the note never describes a file that will not load.
"""

from __future__ import annotations

from app.hardware import HardwareReport
from app.hardware.hardware_report import format_gb
from app.model_files.model_folder import ModelFolder
from app.models.fit_choice import FitChoice, choose

AUTOMATIC = "auto"


def quant_note(folder: ModelFolder, quant: str, hardware: HardwareReport,
               automatic: FitChoice | None = None) -> str:
    """A sentence about loading ``quant`` ("auto" for the automatic choice) from
    ``folder`` on this machine; ``automatic`` is the automatic choice if already known."""
    auto = automatic or choose(folder, hardware, available_quants=folder.text_types())
    if quant in (AUTOMATIC, ""):
        return auto.sentence
    picked = choose(folder, hardware, available_quants=[quant])
    if picked.device == "cpu":
        speed = picked.speeds.get(quant)
        pace = f" at {speed.label()}" if speed is not None else ""
        text = (f"{quant} runs on the CPU here{pace}; it needs "
                f"{format_gb(picked.breakdown.total_cpu)} of RAM.")
    elif picked.device == "none":
        text = (f"{quant} is too large for this machine: it needs "
                f"{format_gb(picked.breakdown.total_cpu)} of RAM.")
    else:  # "gpu" or "partial": the sentence is about this one file already
        text = picked.sentence
    if auto.quant != quant and auto.fits:
        text += f" The automatic choice would be {auto.quant}."
    return text
