"""The one load planner: which quantization and how many GPU layers, and how large a
context, for every face (the window, ``run``, ``batch`` and its Ray workers, ``eval``,
the speed test, the server).

- Quantization: the one asked for, else the fit estimate's choice for this machine
  (``app.models.fit_choice``), else — when nothing fits — the folder's best.
- GPU layers: the number asked for, else the fit estimate's for *that* quantization,
  falling back to 0 (the CPU) when it does not fit.
- Context: ``app.engine.context_size.context_new_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.engine.context_size import context_new_tokens, engine_config
from app.session.identity import ModelIdentity

if TYPE_CHECKING:
    from app.engine.engine import EngineConfig
    from app.hardware import HardwareReport
    from app.model_files.model_folder import ModelFolder, ModelPair
    from app.settings import Settings

__all__ = ["LoadPlan", "choose_mask_decoder", "context_new_tokens", "display_name",
           "engine_config", "plan_load", "quant_from_settings"]


@dataclass(frozen=True)
class LoadPlan:
    """What to load and how; ``choice`` is the automatic choice in one sentence when the
    fit estimate was asked (None when quantization and GPU layers were both given)."""

    pair: ModelPair
    config: EngineConfig
    choice: str | None = None
    name: str = ""  # the display name: the source checkpoint's, else the folder's

    @property
    def identity(self) -> ModelIdentity:
        """The identity jobs on this model carry (what "already done" compares)."""
        return ModelIdentity.of(self.pair, self.name or None)


def display_name(folder: ModelFolder) -> str:
    """A model's name for people: its source checkpoint's (e.g. a Hugging Face repo id)
    as the manifest records it, else the folder's name."""
    return str(folder.manifest.source.get("name") or folder.path.name)


def plan_load(folder: ModelFolder | Path | str, quant: str | None = None,
              gpu_layers: int | None = None, threads: int | None = None,
              max_new_tokens: int | None = None, choose_quant: bool = True,
              hardware: HardwareReport | None = None) -> LoadPlan:
    """Plan a load of ``folder``: ``quant`` None = chosen for this machine (the folder's
    best when ``choose_quant`` is False: the CLI's "default: best present");
    ``gpu_layers`` None = chosen for the quantization that loads; ``max_new_tokens`` see
    ``context_new_tokens``. Raises ModelFolderError (no such folder or quantization)
    before anything is loaded."""
    from app.model_files.model_folder import ModelFolder

    folder = folder if isinstance(folder, ModelFolder) else ModelFolder(folder)
    choice_sentence = None
    if quant is None and not choose_quant:
        quant = folder.resolve(None).quant
    if quant is None or gpu_layers is None:
        from app.models.fit_choice import gpu_layers_of, load_choice

        choice = load_choice(folder, quant, hardware)
        choice_sentence = choice.sentence
        if quant is None and choice.fits:
            quant = choice.quant
        if gpu_layers is None:
            gpu_layers = gpu_layers_of(choice)
    pair = folder.resolve(quant)
    return LoadPlan(pair, engine_config(gpu_layers, threads, max_new_tokens), choice_sentence,
                    display_name(folder))


def choose_mask_decoder(is_segment: bool, models_dir: Path | str | None = None,
                        explicit: Path | None = None) -> tuple[Path | None, str | None]:
    """The mask decoder a segment job uses, and why there is none (for a note).

    ``explicit`` (``--mask-decoder``) wins and is checked when the task runs; else the
    decoder installed under ``models_dir`` (default: Settings' models folder); else none,
    with the reason in words. Other tasks need no decoder and get (None, None)."""
    if not is_segment:
        return None, None
    if explicit is not None:
        return Path(explicit), None
    from app.models.mask_decoder import decoder_problem, installed_decoder
    from app.session.model_resolver import models_dir_from_settings

    models_dir = models_dir_from_settings(models_dir)
    found = installed_decoder(models_dir)
    return found, None if found is not None else decoder_problem(models_dir)


def quant_from_setting(setting: str) -> str | None:
    """The quantization a Settings value ("auto", "" or a type) asks for; None = the
    automatic choice."""
    return None if setting in ("auto", "") else setting


def quant_from_settings(settings: Settings) -> str | None:
    """The quantization the window's settings ask for; None = the automatic choice."""
    return quant_from_setting(settings.quantization)
