"""Measured usage (from the ledger) against provisioned capacity (from the inventory).

The ledger says what workloads held: GPU-, CPU- and node-hours per accelerator type and per
workload kind (``Ledger.usage(since, until)`` rows, already clipped to the period). The
inventory says what the fleet *had*: every node exists, and costs money, busy or idle, from its
purchase date on. Utilization is the ratio, per accelerator type: GPU-hours used / GPU-hours
provisioned for GPU types, CPU-hours for CPU-only nodes::

    period = period_bounds(now, period_days=30)
    used = usage_by(rows, "accelerator_type")
    prov = provisioned(inventory.nodes, period)
    utilization(used["H100"], prov["H100"])            # 0.42
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.inventory import CPU_TYPE, Node


@dataclass(frozen=True)
class Period:
    since: dt.datetime
    until: dt.datetime

    @property
    def hours(self) -> float:
        return max((self.until - self.since).total_seconds(), 0.0) / 3600.0

    def label(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"


def period_bounds(
    now: dt.datetime,
    period_days: float | None = 30,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Period:
    """``[since, until)``: explicit bounds win; otherwise the ``period_days`` before ``until``."""
    until = until or now
    if since is None:
        since = until - dt.timedelta(days=period_days or 30)
    return Period(since, until)


@dataclass
class Hours:
    """Resource-hours a set of workloads held."""

    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    node_hours: float = 0.0
    workloads: int = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self.gpu_hours += float(row.get("gpu_hours") or 0)
        self.cpu_hours += float(row.get("cpu_hours") or 0)
        self.node_hours += float(row.get("node_hours") or 0)
        self.workloads += 1


def usage_by(rows: Iterable[Mapping[str, Any]], *keys: str) -> dict[str, Hours]:
    """Sum ledger rows by one or more columns (``"kind"``, ``"accelerator_type"``); several
    keys are joined with ``/``."""
    out: dict[str, Hours] = {}
    for row in rows:
        key = "/".join(str(row.get(k)) for k in keys)
        out.setdefault(key, Hours()).add(row)
    return dict(sorted(out.items()))


@dataclass
class Provisioned:
    """What the fleet had of one accelerator type over the period."""

    accelerator_type: str
    nodes: int = 0
    gpus: int = 0
    cpus: int = 0
    node_hours: float = 0.0
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0


def node_hours_in(node: Node, period: Period) -> float:
    """Hours the node existed within the period (from its purchase date on)."""
    bought = dt.datetime.combine(node.purchase_date, dt.time())
    start = max(period.since, bought)
    return max((period.until - start).total_seconds(), 0.0) / 3600.0


def provisioned(nodes: Sequence[Node], period: Period) -> dict[str, Provisioned]:
    """Provisioned node-, GPU- and CPU-hours per accelerator type."""
    out: dict[str, Provisioned] = {}
    for node in nodes:
        hours = node_hours_in(node, period)
        p = out.setdefault(node.accelerator_type, Provisioned(node.accelerator_type))
        p.nodes += 1
        p.gpus += node.gpu_count
        p.cpus += node.cpus
        p.node_hours += hours
        p.gpu_hours += node.gpu_count * hours
        p.cpu_hours += node.cpus * hours
    return dict(sorted(out.items()))


def utilization(used: Hours | None, prov: Provisioned | None) -> float | None:
    """Used / provisioned GPU-hours (GPU types) or CPU-hours (CPU); None without capacity."""
    if prov is None:
        return None
    used = used or Hours()
    if prov.accelerator_type != CPU_TYPE and prov.gpu_hours > 0:
        return used.gpu_hours / prov.gpu_hours
    return used.cpu_hours / prov.cpu_hours if prov.cpu_hours > 0 else None


def fleet_utilization(used: Mapping[str, Hours], prov: Mapping[str, Provisioned]) -> float | None:
    """One number for the fleet: GPU-hours used / provisioned when it has GPUs (they are what
    costs money), else CPU-hours."""
    gpu_cap = sum(p.gpu_hours for p in prov.values())
    if gpu_cap > 0:
        return sum(used[t].gpu_hours for t in prov if t in used) / gpu_cap
    cpu_cap = sum(p.cpu_hours for p in prov.values())
    if cpu_cap > 0:
        return sum(used[t].cpu_hours for t in prov if t in used) / cpu_cap
    return None
