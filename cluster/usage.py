"""Record a job's usage in the ledger from inside the job, on success and on failure.

    with track("pull", name="smollm2") as run:
        ...                                  # the work
        run.allocations = [Allocation("H100", gpus=8, cpus=32, nodes=1)]   # if not the driver

Without explicit allocations the record says what the driver held: one CPU on this node.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cluster.ledger import Allocation, Ledger

log = logging.getLogger(__name__)
ACCELERATOR_ENV = "ONPREM_ACCELERATOR_TYPE"


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


def node_capacity(node_id: str | None = None) -> tuple[float, float]:
    """CPUs and GPUs of a node (this one by default): from Ray when connected, else local."""
    try:
        import ray

        if ray.is_initialized():
            node_id = node_id or ray.get_runtime_context().get_node_id()
            for node in ray.nodes():
                if node.get("NodeID") == node_id:
                    res = node.get("Resources") or {}
                    return float(res.get("CPU", 0)), float(res.get("GPU", 0))
    except Exception:  # capacity is bookkeeping: fall back to the local machine
        pass
    return float(os.cpu_count() or 1), 0.0


def node_share(cpus: float, gpus: float, capacity: tuple[float, float]) -> float:
    """The fraction of a node a workload holds: by GPUs on GPU nodes, else by CPUs. Node-hours
    in the ledger are these shares times hours, so workloads sharing a node add up to it."""
    cap_cpus, cap_gpus = capacity
    if gpus and cap_gpus:
        return min(1.0, gpus / cap_gpus)
    return min(1.0, cpus / cap_cpus) if cap_cpus else 1.0


@dataclass
class TrackedRun:
    workload_id: int | None
    allocations: list[Allocation] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@contextmanager
def track(
    kind: str, name: str, *, ledger: Ledger | None = None, meta: dict[str, Any] | None = None
) -> Iterator[TrackedRun]:
    """Open a ledger record for the block; close it SUCCEEDED or FAILED with its allocations.

    A ledger that cannot be written (read-only disk, Postgres down) is logged, never fatal:
    bookkeeping must not fail the work it records.
    """
    try:
        ledger = ledger or Ledger()
        wid = ledger.start(kind, name, submission_id=submission_id(), meta=meta)
    except Exception as exc:
        log.warning("usage ledger unavailable, not recording %s %s: %s", kind, name, exc)
        ledger, wid = None, None
    run = TrackedRun(wid)
    status = "FAILED"
    try:
        yield run
        status = "SUCCEEDED"
    finally:
        if ledger is not None and wid is not None:
            allocs = run.allocations or [
                Allocation(
                    node_accelerator_type(), cpus=1.0, nodes=node_share(1.0, 0.0, node_capacity())
                )
            ]
            try:
                ledger.finish(wid, status, allocs, meta=run.meta)
            except Exception as exc:
                log.warning("could not close ledger record %s: %s", wid, exc)
