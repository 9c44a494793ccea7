"""The batch as a Ray Data pipeline: paths -> map_batches(RayLabeler) -> this process.

Workers load the engine once each (actor pool of ``workers``) and send outcomes back;
this process writes them with the same rules as the local loop, so the file, the
``--resume`` behaviour and the records are the same as without Ray. Ray is optional
(``pip install 'palidesk[cluster]'``) and imported only here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from app.batch.job import BatchJob
from app.batch.labeler import Outcome
from app.batch.progress_bar import BatchProgress
from app.batch.ray_address import check_reachable
from app.batch.results_log import ResultsLog
from app.batch.settle import settle
from app.batch.summary import BatchSummary
from app.counted import counted
from app.errors import Cancelled, PaliDeskError

# Object store for `--ray local`: the pipeline moves paths and JSON records (KBs), so
# Ray's default (30% of RAM) would only reserve memory the engine needs.
_LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


class RayError(PaliDeskError):
    """Ray is missing, cannot be reached, or a worker failed."""


@dataclass(frozen=True)
class RaySettings:
    address: str  # "local", "auto", or a cluster address (host:port, ray://host:port)
    workers: int | None  # None: as many as the cluster's resources allow
    cpus_per_worker: float
    gpus_per_worker: float


def run_on_ray(job: BatchJob, inputs: list[str], limit: int | None, total: int | None,
               settings: RaySettings, log: ResultsLog, summary: BatchSummary,
               progress: BatchProgress) -> None:
    ray = _import_ray()
    start = time.monotonic()
    started_here = _connect(ray, settings)
    try:
        settings = _fit_to_cluster(ray, settings)
        print(f"Ray: connected in {time.monotonic() - start:.1f} s; "
              f"{counted(settings.workers or 0, 'worker')}, each "
              f"{settings.cpus_per_worker:g} CPU, "
              f"{settings.gpus_per_worker:g} GPU", file=sys.stderr)
        _run(ray, job, inputs, limit, total, settings, log, summary, progress)
    except KeyboardInterrupt:
        # Ctrl+C reaches this process (the driver) while it waits for the next result:
        # what was written stays; shutting Ray down below stops the workers mid-image.
        raise Cancelled("The batch (finished images are kept; add --resume to "
                        "continue)") from None
    except (ray.exceptions.RayError, RuntimeError) as exc:
        raise RayError(f"The Ray pipeline failed: {_root_cause(exc)}") from exc
    finally:
        if started_here:
            ray.shutdown()


def _run(ray: Any, job: BatchJob, inputs: list[str], limit: int | None, total: int | None,
         settings: RaySettings, log: ResultsLog, summary: BatchSummary,
         progress: BatchProgress) -> None:
    from ray.data import ActorPoolStrategy, DataContext

    from app.batch.ray_labeler import RayLabeler
    from app.batch.ray_paths import ImagePathSource

    context = DataContext.get_current()
    context.enable_progress_bars = False  # ours counts images, not Ray blocks
    context.print_on_execution_start = False
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # -v keeps Ray Data's logs
        # Its failures reach us as exceptions, reported once in plain words.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    known = ray.put(log.snapshot())  # shipped once, shared by the workers of a node
    # The listing needs no CPU of its own: with every CPU reserved by a worker, a read
    # task that asks for one would never start and the pipeline would wait forever.
    paths = ray.data.read_datasource(ImagePathSource(inputs, limit, total), num_cpus=0)
    labelled = paths.map_batches(
        RayLabeler,
        fn_constructor_kwargs={"job": job, "known": known},
        batch_size=1,  # one image per call: outcomes stream back as each finishes
        batch_format="numpy",
        # Two calls queued per worker: no idle gap between images, a short tail.
        compute=ActorPoolStrategy(size=settings.workers, max_tasks_in_flight_per_actor=2),
        num_cpus=settings.cpus_per_worker,
        num_gpus=settings.gpus_per_worker,
    )
    start = time.monotonic()
    first_s = 0.0
    loads: list[float] = []
    for row in labelled.iter_rows():
        first_s = first_s or time.monotonic() - start
        settle(_outcome(row), log, summary, progress)
        if row["load_s"] >= 0:
            loads.append(float(row["load_s"]))
    if loads:
        progress.write(f"Ray: first image back {first_s:.1f} s after the pipeline started; "
                       f"engine load per worker {min(loads):.1f}-{max(loads):.1f} s "
                       f"({counted(len(loads), 'worker')})")


def check_ray_settings(settings: RaySettings) -> None:
    """Refuse, before anything starts, what can be known wrong here: Ray not installed,
    or (`--ray local`, i.e. this machine) a worker pool that could never be placed."""
    _import_ray()
    if settings.address != "local":
        return
    cpus = os.cpu_count() or 1
    if settings.cpus_per_worker > cpus:
        raise RayError(f"Each worker asks for {settings.cpus_per_worker:g} CPUs but this "
                       f"machine has {cpus}; lower --ray-cpus-per-worker.")
    if settings.workers is not None and settings.workers * settings.cpus_per_worker > cpus:
        raise RayError(f"{counted(settings.workers, 'worker')} of "
                       f"{settings.cpus_per_worker:g} CPUs need "
                       f"more than this machine's {cpus}; lower --ray-workers or "
                       "--ray-cpus-per-worker.")


def _fit_to_cluster(ray: Any, settings: RaySettings) -> RaySettings:
    """Check the per-worker request fits the cluster and pick the worker count if unset:
    an actor that can never be placed would make the pipeline wait forever."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if settings.gpus_per_worker > gpus:
        raise RayError(f"Each worker asks for {settings.gpus_per_worker:g} GPU but the Ray "
                       f"cluster has {gpus:g}.")
    if settings.cpus_per_worker > cpus:
        raise RayError(f"Each worker asks for {settings.cpus_per_worker:g} CPUs but the Ray "
                       f"cluster has {cpus:g}; lower --ray-cpus-per-worker.")
    if settings.workers is not None:
        return settings
    fit = cpus // settings.cpus_per_worker
    if settings.gpus_per_worker > 0:
        fit = min(fit, gpus // settings.gpus_per_worker)
    return replace(settings, workers=max(1, int(fit)))


def _outcome(row: dict[str, Any]) -> Outcome:
    record = json.loads(row["record"]) if row["record"] else None
    return Outcome(str(row["image"]), row["kind"], bytes.fromhex(row["content"]),
                   bytes.fromhex(row["entry"]), record)


def _import_ray() -> Any:  # the ray module
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayError(
            "--ray needs Ray Data, which is not installed. Install it with "
            "`pip install 'palidesk[cluster]'` (or `pip install 'ray[data]'`)."
        ) from exc
    return ray


def _connect(ray: Any, settings: RaySettings) -> bool:
    """Start or join Ray; True when this process started it (and must stop it)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR,
             "log_to_driver": False}
    problem = check_reachable(settings.address)
    if problem is not None:  # ray.init would retry a closed port for minutes
        raise RayError(f"Cannot join the Ray cluster at {settings.address!r}: {problem}. "
                       "Start one with `ray start --head`, or use --ray local for a Ray "
                       "instance on this machine.")
    try:
        if settings.address == "local":
            ray.init(address="local", num_cpus=os.cpu_count(),
                     object_store_memory=_LOCAL_OBJECT_STORE_BYTES, **quiet)
            return True
        ray.init(address=settings.address, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayError(
            f"Cannot join the Ray cluster at {settings.address!r}: {str(exc).rstrip('.')}. "
            "Start one with `ray start --head`, or use --ray local for a Ray instance on "
            "this machine."
        ) from exc
    return True


# How a worker's PaliDesk error reads once Ray has turned it into text (actor deaths
# carry only the formatted traceback): "app.errors.EngineError: The model folder ...".
_PALIDESK_LINE = re.compile(r"^app\.[\w.]*?(?:Error|Exception): (.+)$", re.MULTILINE)


def _root_cause(exc: BaseException) -> str:
    """The PaliDesk message inside a worker's failure if there is one, else the
    innermost error Ray wrapped, as "Type: message"."""
    layers: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(layers) < 20:  # short chains; never loop on a cycle
        layers.append(seen)
        seen = getattr(seen, "cause", None) or seen.__cause__
    for layer in layers:
        if isinstance(layer, PaliDeskError):
            return str(layer)
    for layer in layers:
        if found := _PALIDESK_LINE.findall(str(layer)):
            return found[-1].strip()
    for layer in reversed(layers):
        lines = [line for line in str(layer).strip().splitlines() if line.strip()]
        if lines:
            return f"{type(layer).__name__}: {lines[-1].strip()}"
    return type(exc).__name__
