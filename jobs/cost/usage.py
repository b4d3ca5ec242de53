"""Measured usage (from the ledger) against provisioned capacity (from the inventory).

The ledger says what workloads held: GPU-, CPU- and node-hours (``Ledger.usage(since, until)``
rows, already clipped to the period). The inventory says what the fleet *had*: every node
exists, and costs money, busy or idle, from its purchase date on. Utilization is the ratio per
accelerator type: GPU-hours for GPU types, CPU-hours for CPU-only nodes::

    period = period_bounds(now, period_days=30)
    used = usage_frame(rows).groupby("accelerator_type")[HOURS].sum()
    prov = provisioned(inventory.nodes, period)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cluster.inventory import CPU_TYPE, Node

HOURS = ["gpu_hours", "cpu_hours", "node_hours"]


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


def usage_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Ledger rows as a frame: kind, accelerator_type, status and the hours held."""
    cols = ["kind", "accelerator_type", "status", *HOURS]
    df = pd.DataFrame(list(rows), columns=cols) if rows else pd.DataFrame(columns=cols)
    return df.astype({h: float for h in HOURS})


def node_hours_in(node: Node, period: Period) -> float:
    """Hours the node existed within the period (from its purchase date on)."""
    bought = dt.datetime.combine(node.purchase_date, dt.time())
    start = max(period.since, bought)
    return max((period.until - start).total_seconds(), 0.0) / 3600.0


def provisioned(nodes: Sequence[Node], period: Period) -> pd.DataFrame:
    """Provisioned node-, GPU- and CPU-hours per accelerator type."""
    rows = []
    for node in nodes:
        hours = node_hours_in(node, period)
        rows.append(
            {
                "accelerator_type": node.accelerator_type,
                "gpu_hours": node.gpu_count * hours,
                "cpu_hours": node.cpus * hours,
                "node_hours": hours,
            }
        )
    return pd.DataFrame(rows).groupby("accelerator_type")[HOURS].sum()


def unit_hours(hours: pd.DataFrame) -> pd.Series:
    """The hours that cost money per type: GPU-hours for GPU types, CPU-hours for CPU."""
    gpu = hours.index != CPU_TYPE
    return hours["gpu_hours"].where(gpu, hours["cpu_hours"])
