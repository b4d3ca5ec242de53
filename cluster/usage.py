"""Record a job's usage in the ledger from inside the job, whatever its outcome.

    with track("finetune", name, holds=[Allocation("H100", gpus=16, cpus=32, nodes=2)]) as run:
        ...                                  # the work
        run.allocations = [...]              # optional: what it held, known only at the end

A job charges what it held from its start to its end: ``holds`` (the Ray workers it asked for,
declared up front so a run that fails or is stopped half-way is charged them too), refined by
``run.allocations`` when the work reports its real placement, else the driver's one CPU. The
record closes SUCCEEDED, FAILED (an exception) or STOPPED (``ray job stop`` sends SIGTERM,
which ends the block as :class:`Stopped`). ``holds`` is also kept in the record's metadata, so
:meth:`Ledger.import_ray_jobs` can charge a driver that was killed before it could close it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cluster.ledger import Allocation, Ledger

log = logging.getLogger(__name__)
ACCELERATOR_ENV = "ONPREM_ACCELERATOR_TYPE"


class Stopped(SystemExit):
    """Raised in the main thread on SIGTERM, so the work unwinds and its record says STOPPED
    (a SystemExit: the job exits without a traceback)."""


def submission_id() -> str | None:
    """The Ray job submission id when running under ``ray job submit``, else None."""
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return None
    try:
        return json.loads(raw).get("metadata", {}).get("job_submission_id")
    except ValueError:
        return None


def node_accelerator_type() -> str:
    """This node's accelerator type: declared by ``cluster up`` / the on-prem start command, or
    the CUDA device name, or ``CPU``."""
    declared = os.environ.get(ACCELERATOR_ENV)
    if declared:
        return declared
    try:
        import torch

        if torch.cuda.is_available():
            from cluster.accelerators import gpu_model_from_name

            return gpu_model_from_name(torch.cuda.get_device_name(0))
    except Exception:  # torch missing or CUDA probe failing must not break bookkeeping
        pass
    return "CPU"


def _ray_nodes() -> list[dict[str, Any]]:
    try:
        import ray

        return [n for n in ray.nodes() if n.get("Alive")] if ray.is_initialized() else []
    except Exception:  # capacity is bookkeeping: fall back to the local machine
        return []


def node_capacity(node_id: str | None = None) -> tuple[float, float]:
    """CPUs and GPUs of a node (this one by default): from Ray when connected, else local."""
    nodes = _ray_nodes()
    if nodes:
        import ray

        node_id = node_id or ray.get_runtime_context().get_node_id()
        for node in nodes:
            if node.get("NodeID") == node_id:
                res = node.get("Resources") or {}
                return float(res.get("CPU", 0)), float(res.get("GPU", 0))
    return float(os.cpu_count() or 1), 0.0


def node_share(cpus: float, gpus: float, capacity: tuple[float, float]) -> float:
    """The fraction of a node a workload holds: by GPUs on GPU nodes, else by CPUs. Node-hours
    in the ledger are these shares times hours, so workloads sharing a node add up to it."""
    cap_cpus, cap_gpus = capacity
    if gpus and cap_gpus:
        return min(1.0, gpus / cap_gpus)
    return min(1.0, cpus / cap_cpus) if cap_cpus else 1.0


def cluster_gpu_type() -> str | None:
    """The GPU model with the most GPUs in the connected Ray cluster (None without GPUs)."""
    counts: dict[str, float] = {}
    for node in _ray_nodes():
        res = node.get("Resources") or {}
        for key in res:
            if key.startswith("accelerator_type:"):
                model = key.split(":", 1)[1]
                counts[model] = counts.get(model, 0.0) + float(res.get("GPU", 0))
    return max(counts, key=lambda m: counts[m]) if counts else None


def workers_held(accelerator_type: str, workers: int, cpus: float, gpus: float) -> Allocation:
    """What ``workers`` Ray workers of ``cpus`` and ``gpus`` each hold on nodes of one type.
    Node-hours count whole nodes of that type (a 16-GPU group on 8-GPU nodes holds 2)."""
    sizes = [
        (float(r.get("CPU", 0)), float(r.get("GPU", 0)))
        for r in (n.get("Resources") or {} for n in _ray_nodes())
        if accelerator_type == "CPU" or f"accelerator_type:{accelerator_type}" in r
    ] or [node_capacity()]
    cap_cpus, cap_gpus = max(sizes)
    total_cpus, total_gpus = workers * cpus, workers * gpus
    if total_gpus and cap_gpus:
        nodes = total_gpus / cap_gpus
    else:
        nodes = total_cpus / cap_cpus if cap_cpus else 1.0
    return Allocation(accelerator_type, gpus=total_gpus, cpus=total_cpus, nodes=nodes)


@dataclass
class TrackedRun:
    workload_id: int | None
    allocations: list[Allocation] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False  # SIGTERM arrived (``ray job stop``)


@contextmanager
def _stop_on_sigterm(run: TrackedRun) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, _frame: Any) -> None:
        # Ray re-raises what a handler raises inside ray.get as SystemExit(1): remember it here
        run.stopped = True
        raise Stopped(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def track(
    kind: str,
    name: str,
    *,
    ledger: Ledger | None = None,
    meta: dict[str, Any] | None = None,
    holds: Sequence[Allocation] = (),
) -> Iterator[TrackedRun]:
    """Open a ledger record for the block; close it SUCCEEDED, FAILED or STOPPED with what the
    job held (module docstring).

    A ledger that cannot be written (read-only disk, Postgres down) is logged, never fatal:
    bookkeeping must not fail the work it records.
    """
    # What it holds is recorded when it starts (the driver's CPU when nothing is declared), so
    # a killed driver, closed later by Ledger.import_ray_jobs, is still charged for it.
    driver = Allocation(
        node_accelerator_type(), cpus=1.0, nodes=node_share(1.0, 0.0, node_capacity())
    )
    meta = {**(meta or {}), "holds": [dataclasses.asdict(a) for a in (list(holds) or [driver])]}
    try:
        ledger = ledger or Ledger()
        wid = ledger.start(kind, name, submission_id=submission_id(), meta=meta)
    except Exception as exc:
        log.warning("usage ledger unavailable, not recording %s %s: %s", kind, name, exc)
        ledger, wid = None, None
    run = TrackedRun(wid)
    status = "FAILED"
    try:
        with _stop_on_sigterm(run):
            yield run
        status = "SUCCEEDED"
    finally:
        status = "STOPPED" if run.stopped else status
        if ledger is not None and wid is not None:
            allocs = run.allocations or list(holds) or [driver]
            try:
                ledger.finish(wid, status, allocs, meta=run.meta)
            except Exception as exc:
                log.warning("could not close ledger record %s: %s", wid, exc)
