"""Capacity planning: replicas, GPUs and nodes for a growing load, month by month (pure).

From the benchmark's operating point (the highest concurrency whose p95 latency meets the SLO,
see ``bench.operating_point``) one replica sustains ``tokens_per_s`` output tokens per second.
Planning at a ``headroom`` (e.g. 0.8 of that, so bursts do not break the SLO)::

    demand(m)  = base_tokens_per_s * (1 + growth_pct / 100) ** m
    replicas   = ceil(demand / (tokens_per_s * headroom))
    nodes      = ceil(replicas / replicas_per_node)       never fewer than last month (owned)
    instances  = ceil(replicas / replicas_per_instance)   rented month by month, always on

Load given as requests/s becomes tokens/s through the output length (``rps * output_tokens``);
given as tokens/day, through ``/ 86400``. Prompt length is recorded but only enters through the
benchmark: plan with a benchmark whose prompts look like the real ones.

On-prem: each new node is paid (capex) the month it is bought and every owned node costs its
opex every month; the site's one-off setup is not repeated here. Cloud: the instances needed
that month, on-demand, for every hour of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs.cost.tco import HOURS_PER_MONTH

SECONDS_PER_DAY = 86400.0


def base_load(
    requests_per_s: float | None, tokens_per_day: float | None, output_tokens: int
) -> tuple[float, float]:
    """(requests/s, output tokens/s) of the load today, from either way of stating it."""
    if requests_per_s is not None:
        return requests_per_s, requests_per_s * output_tokens
    if tokens_per_day is None:
        raise ValueError("give requests_per_s or tokens_per_day")
    tokens_per_s = tokens_per_day / SECONDS_PER_DAY
    return tokens_per_s / output_tokens, tokens_per_s


def replicas_needed(demand_tokens_per_s: float, tokens_per_s: float, headroom: float) -> int:
    """Replicas that serve the demand with each loaded to ``headroom`` of its measured rate."""
    if demand_tokens_per_s <= 0:
        return 0
    return math.ceil(demand_tokens_per_s / (tokens_per_s * headroom) - 1e-9)


def hosts_needed(replicas: int, units_per_replica: float, units_per_host: int) -> int:
    """Nodes (or instances) for ``replicas``: whole replicas per host, or several hosts per
    replica when one replica needs more units (GPUs/CPUs) than a host has."""
    if replicas <= 0:
        return 0
    if units_per_replica <= units_per_host:
        per_host = max(int(units_per_host // units_per_replica), 1)
        return math.ceil(replicas / per_host)
    return replicas * math.ceil(units_per_replica / units_per_host)


@dataclass(frozen=True)
class Shape:
    """What a replica needs and what a node / instance holds and costs."""

    accelerator_type: str
    units_per_replica: float  # GPUs (GPU types) or CPUs per replica
    tokens_per_s: float  # measured per replica at the operating point
    units_per_node: int
    node_capex_usd: float
    node_opex_monthly_usd: float
    instance_type: str
    units_per_instance: int
    instance_hourly_usd: float  # on-demand


def plan(
    shape: Shape,
    base_requests_per_s: float,
    base_tokens_per_s: float,
    growth_pct_per_month: float,
    months: int,
    headroom: float = 0.8,
) -> pd.DataFrame:
    """Month-by-month replicas, nodes to buy and instances to rent (formulas above), one row a
    month; nodes are bought as the load needs them and kept."""
    m = np.arange(months)
    factor = (1 + growth_pct_per_month / 100.0) ** m
    df = pd.DataFrame({"month": m, "demand_requests_per_s": base_requests_per_s * factor,
                       "demand_tokens_per_s": base_tokens_per_s * factor})  # fmt: skip
    df["replicas"] = [replicas_needed(d, shape.tokens_per_s, headroom)
                      for d in df.demand_tokens_per_s]  # fmt: skip
    df["units"] = df.replicas * shape.units_per_replica
    hosts = [hosts_needed(r, shape.units_per_replica, shape.units_per_node) for r in df.replicas]
    df["nodes"] = np.maximum.accumulate(hosts)  # owned: never fewer than last month
    df["new_nodes"] = df.nodes.diff().fillna(df.nodes)
    df["onprem_monthly_usd"] = (df.new_nodes * shape.node_capex_usd
                                + df.nodes * shape.node_opex_monthly_usd)  # fmt: skip
    df["onprem_cumulative_usd"] = df.onprem_monthly_usd.cumsum()
    df["instances"] = [hosts_needed(r, shape.units_per_replica, shape.units_per_instance)
                       for r in df.replicas]  # fmt: skip
    df["cloud_monthly_usd"] = df.instances * shape.instance_hourly_usd * HOURS_PER_MONTH
    df["cloud_cumulative_usd"] = df.cloud_monthly_usd.cumsum()
    return df


def crossover_month(plan: pd.DataFrame) -> int | None:
    """First month from which buying has cost no more than renting, cumulatively; None if
    renting stays cheaper over the whole plan."""
    ahead = (plan.onprem_cumulative_usd <= plan.cloud_cumulative_usd)[::-1].cummin()[::-1]
    return int(plan.month[ahead].iloc[0]) if ahead.any() else None
