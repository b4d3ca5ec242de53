"""The owned side as finance sees it, as monthly cash flows (pure numpy, vectorised over samples).

Per node (``site`` figures from ``cluster/inventory.yaml``, hourly)::

    power      = kW x avg_power_fraction x PUE x $/kWh
    colocation = kW x colocation_usd_per_kw_month x 12 / 8760
    support    = support_pct_per_year x capex / 8760
    failures   = failure_pct_per_year x capex / 8760       (repairs, replaced parts, RMAs)
    staff      = staff_usd_per_node_year / 8760
    running    = power + colocation + support + failures + staff       (paid every month)

Cash: the fleet is bought at the start (capex + network and storage gear + spares bought up
front, as % of capex, + setup); nodes added as demand outgrows it are bought the month they are
needed. Straight-line depreciation over ``amortization_years``: at the horizon each server is
sold for ``residual_value_pct`` of its remaining book value (credited in the last month), so
``capex - resale`` is the depreciation charged plus the loss on sale. Every flow is discounted
at the discount rate (``billing.npv``) to compare with renting and the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cluster.inventory import Site
from jobs.cost.billing import HOURS_PER_MONTH, zeros

HOURS_PER_YEAR = 8760.0
RUNNING = ("power", "colocation", "support", "failures", "staff")


def node_costs(
    nodes: Sequence[tuple[str, str, int, float, float]], site: Site, failure_pct: float
) -> pd.DataFrame:
    """Hourly cost of each node ``(name, accelerator_type, units, capex, power_w)``, by part."""
    df = pd.DataFrame(nodes, columns=["node", "accelerator_type", "units", "capex_usd", "power_w"])
    parts = running_parts(df.capex_usd.to_numpy(), df.power_w.to_numpy() / 1000, site_x(site)
                          | {"failure_pct_per_year": failure_pct})  # fmt: skip
    for name, v in parts.items():
        df[f"{name}_usd_h"] = v[0] / HOURS_PER_MONTH
    df["running_usd_h"] = df[[f"{p}_usd_h" for p in RUNNING]].sum(axis=1)
    df["depreciation_usd_h"] = df.capex_usd / (site.amortization_years * HOURS_PER_YEAR)
    df["total_usd_h"] = df.running_usd_h + df.depreciation_usd_h
    return df.drop(columns="power_w")


def site_x(site: Site) -> dict[str, float]:
    """The site's figures as model inputs (the names the ranges use)."""
    keys = ("electricity_usd_per_kwh", "pue", "avg_power_fraction", "colocation_usd_per_kw_month",
            "support_pct_per_year", "staff_usd_per_node_year", "setup_usd", "network_storage_pct",
            "spares_pct", "residual_value_pct")  # fmt: skip
    return {k: float(getattr(site, k)) for k in keys}


def _col(x: Mapping[str, np.ndarray | float], key: str) -> np.ndarray:
    return np.atleast_1d(np.asarray(x[key], float))[:, None]


def running_parts(
    capex: np.ndarray, kw: np.ndarray, x: Mapping[str, np.ndarray | float]
) -> dict[str, np.ndarray]:
    """Monthly running cost by part, shape (samples, nodes)."""
    capex = capex[None, :] * _col({"f": x.get("capex_factor", 1.0)}, "f")
    pct = capex / 100 / 12
    return {
        "power": kw * HOURS_PER_MONTH * _col(x, "avg_power_fraction") * _col(x, "pue")
        * _col(x, "electricity_usd_per_kwh"),
        "colocation": kw * _col(x, "colocation_usd_per_kw_month"),
        "support": pct * _col(x, "support_pct_per_year"),
        "failures": pct * _col(x, "failure_pct_per_year"),
        "staff": _col(x, "staff_usd_per_node_year") / 12 + 0 * kw,
    }  # fmt: skip


def owned_flows(
    capex: np.ndarray,
    kw: np.ndarray,
    added: np.ndarray,
    template: int,
    x: Mapping[str, np.ndarray | float],
    life_years: float,
) -> np.ndarray:
    """Cash flows of owning the inventory's nodes (``capex``, ``kw`` per node) plus ``added``
    copies of node ``template`` owned in each month (shape (samples, months))."""
    s, months = added.shape
    factor = _col(x, "capex_factor")[:, 0] if "capex_factor" in x else np.ones(s)
    gear = 1 + (_col(x, "network_storage_pct") + _col(x, "spares_pct"))[:, 0] / 100
    run = sum(running_parts(capex, kw, x).values())  # (samples, nodes) a month
    new = np.diff(added, axis=1, prepend=0.0)
    out = zeros(s, months)
    out[:, 0] += capex.sum() * factor * gear + _col(x, "setup_usd")[:, 0]
    out[:, :months] += new * (capex[template] * factor * gear)[:, None]
    out[:, 1 : months + 1] += run.sum(axis=1)[:, None] + added * run[:, [template]]
    age = (months - np.arange(months)) / 12.0  # years each month's purchase is at the horizon
    book = np.clip(1 - age / life_years, 0, None)
    resale = capex.sum() * book[0] + (new * capex[template] * book).sum(axis=1)
    out[:, months] -= resale * factor * _col(x, "residual_value_pct")[:, 0] / 100
    return out
