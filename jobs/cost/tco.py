"""Total cost of ownership: on-prem vs every way to rent the same GPUs, as pure functions.

On-prem hourly cost of one node (USD/hour; ``site`` figures from ``cluster/inventory.yaml``)::

    depreciation = capex / (amortization_years * 8760)
    power        = power_w / 1000 * avg_power_fraction * pue * usd_per_kwh
    colocation   = power_w / 1000 * colocation_usd_per_kw_month * 12 / 8760
    support      = support_pct_per_year / 100 * capex / 8760
    staff        = staff_usd_per_node_year / 8760
    running      = power + colocation + support + staff          (paid every month)

Paid up front: capex + network and storage gear (``network_storage_pct`` of capex) + spares
(``spares_pct`` of capex) + ``setup_usd``. Cost of capital: what that cash would have earned,
``upfront * cost_of_capital_pct / 100 / 12`` a month (the same rate is charged on any upfront
payment to AWS). Resale at the end of the horizon (``residual_value_pct`` of capex) is credited
in the last month. Cumulative on-prem cost after ``m`` months::

    owned(m) = upfront + (running + capital) * m   [- residual at the horizon]

Renting the same units (a GPU or a vCPU; ``u`` the share of hours busy):

- paid per hour used (on-demand, spot, Capacity Blocks): ``units * price * 730 * u`` a month;
- commitments (Reserved Instances, Savings Plans): ``units * hourly * 730`` a month, used or
  not, plus ``units * upfront`` at the start of every term begun.

An option AWS does not price for an accelerator type is filled with on-demand for that type (and
named so). Spot can be reclaimed, so the *cheapest option able to carry the workload* is chosen
among the others, per accelerator type. Break-even month vs an option (its effective monthly
price ``c``): ``m = upfront / (c - running - capital)``, none when ``c`` is not higher.
Break-even utilization: the ``u`` at which the option costs what owning does over the horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cluster.inventory import Site
from jobs.cost.prices import BUSY_PAID, Price, term_years

HOURS_PER_YEAR = 8760.0
HOURS_PER_MONTH = HOURS_PER_YEAR / 12  # 730
SECONDS_PER_HOUR = 3600.0
HEADLINE_EXCLUDED = ("spot",)  # can be reclaimed at two minutes' notice


def node_costs(nodes: Sequence[tuple[str, str, int, float, float]], site: Site) -> pd.DataFrame:
    """Hourly cost of each node ``(name, accelerator_type, units, capex, power_w)``, by part;
    ``units`` are GPUs on a GPU node, CPUs on a CPU-only node (formulas in the docstring)."""
    df = pd.DataFrame(nodes, columns=["node", "accelerator_type", "units", "capex_usd", "power_w"])
    kw = df["power_w"] / 1000.0
    df["depreciation_usd_h"] = df["capex_usd"] / (site.amortization_years * HOURS_PER_YEAR)
    df["power_usd_h"] = kw * site.avg_power_fraction * site.pue * site.electricity_usd_per_kwh
    df["colocation_usd_h"] = kw * site.colocation_usd_per_kw_month * 12 / HOURS_PER_YEAR
    df["support_usd_h"] = site.support_pct_per_year / 100.0 * df["capex_usd"] / HOURS_PER_YEAR
    df["staff_usd_h"] = site.staff_usd_per_node_year / HOURS_PER_YEAR
    parts = ["power_usd_h", "colocation_usd_h", "support_usd_h", "staff_usd_h"]
    df["running_usd_h"] = df[parts].sum(axis=1)
    df["total_usd_h"] = df["running_usd_h"] + df["depreciation_usd_h"]
    return df.drop(columns="power_w")


@dataclass(frozen=True)
class Owned:
    """What owning a fleet costs: paid up front, and every month."""

    capex_usd: float
    network_storage_usd: float
    spares_usd: float
    setup_usd: float
    running_monthly_usd: float  # power, colocation, support, staff
    capital_monthly_usd: float  # what the upfront cash would have earned
    residual_usd: float  # resale at the end of the horizon

    @property
    def upfront_usd(self) -> float:
        return self.capex_usd + self.network_storage_usd + self.spares_usd + self.setup_usd

    @property
    def monthly_usd(self) -> float:
        return self.running_monthly_usd + self.capital_monthly_usd

    def cumulative(self, months: int) -> np.ndarray:
        """Cash out by the end of months 0..months; resale credited in the last."""
        out = self.upfront_usd + self.monthly_usd * np.arange(months + 1, dtype=float)
        out[-1] -= self.residual_usd
        return out


def owned(nodes: pd.DataFrame, site: Site) -> Owned:
    capex = float(nodes["capex_usd"].sum())
    extra = capex * (site.network_storage_pct + site.spares_pct) / 100
    upfront = capex + extra + site.setup_usd
    return Owned(
        capex_usd=capex,
        network_storage_usd=capex * site.network_storage_pct / 100,
        spares_usd=capex * site.spares_pct / 100,
        setup_usd=site.setup_usd,
        running_monthly_usd=float(nodes["running_usd_h"].sum()) * HOURS_PER_MONTH,
        capital_monthly_usd=upfront * site.cost_of_capital_pct / 100 / 12,
        residual_usd=capex * site.residual_value_pct / 100,
    )


def rent_cumulative(
    hourly: float,
    upfront: float,
    option: str,
    utilization: float,
    months: int,
    capital_pct: float = 0.0,
) -> np.ndarray:
    """Cumulative cost of one unit rented under ``option`` over months 0..months."""
    m = np.arange(months + 1, dtype=float)
    years = term_years(option)
    if years is None:
        return hourly * HOURS_PER_MONTH * utilization * m
    term = 12 * years
    out = hourly * HOURS_PER_MONTH * m
    if upfront:
        for start in range(0, max(months, 1), term):  # paid as each term begins (month start+1)
            begun = (m > start) | (start == 0)
            out += np.where(begun, upfront * (1 + capital_pct / 100 / 12 * (m - start)), 0)
    return out


def terms_begun(option: str, months: int) -> int:
    """Commitment terms begun within ``months`` (each pays its upfront fee); 0 for options
    paid per hour used."""
    years = term_years(option)
    return -(-months // (12 * years)) if years else 0


def price_frame(
    units: Mapping[str, float], prices: Mapping[str, Mapping[str, Price]], months: int
) -> pd.DataFrame:
    """One row per (accelerator type, option) AWS prices, indexed so: the units rented and the
    price per unit (``prices[type][option]``, a :class:`Price` per unit)."""
    rows = [
        {
            "accelerator_type": t,
            "option": o,
            "units": units[t],
            "hourly_usd": p.hourly_usd,
            "upfront_usd": p.upfront_usd,
            "effective_usd_h": p.effective_hourly(o),
            "busy_paid": o in BUSY_PAID,
            "terms": terms_begun(o, months),
            "source": p.source,
            "as_of": p.as_of,
            "note": p.note or "",
        }
        for t in units
        for o, p in prices[t].items()
    ]
    return pd.DataFrame(rows).set_index(["accelerator_type", "option"])


def rent_costs(
    prices: pd.DataFrame, utilization: float, months: int, capital_pct: float
) -> pd.DataFrame:
    """Cumulative cost (columns 0..months) of renting each row's units under its option."""
    curves = [
        r.units
        * rent_cumulative(r.hourly_usd, r.upfront_usd, r.Index[1], utilization, months, capital_pct)
        for r in prices.itertuples()
    ]
    return pd.DataFrame(curves, index=prices.index)


def option_parts(
    index: pd.MultiIndex, types: Sequence[str], options: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """Per option, the (type, option) rows a fleet's cost adds up: a type AWS does not price
    under the option is counted on-demand. Options no type has are left out."""
    have = set(index)
    return {
        o: [(t, o if (t, o) in have else "on-demand") for t in types]
        for o in options
        if any((t, o) in have for t in types)
    }


def cheapest(costs: pd.DataFrame) -> dict[str, str]:
    """Per accelerator type, the option with the lowest total that can carry the workload."""
    total = costs.iloc[:, -1]
    eligible = total[~total.index.get_level_values(1).isin(HEADLINE_EXCLUDED)]
    return {t: eligible.xs(t).idxmin() for t in dict.fromkeys(eligible.index.get_level_values(0))}


def mix_name(choice: Mapping[str, str]) -> str:
    """``{"H100": "Capacity Block", "L40S": "on-demand"}`` -> ``Capacity Block (on-demand for
    L40S)``: the cheaper deal first, the types it does not cover after it."""
    by_option: dict[str, list[str]] = {}
    for accel, option in choice.items():
        by_option.setdefault(option, []).append(accel)
    main, *rest = sorted(by_option, key=lambda o: (o == "on-demand", -len(by_option[o])))
    if not rest:
        return main
    if rest == ["on-demand"]:
        return f"{main} (on-demand for {', '.join(by_option['on-demand'])})"
    return "; ".join(f"{o} for {', '.join(by_option[o])}" for o in [main, *rest])


def savings_pct(owned_usd: float, cloud_usd: float) -> float | None:
    """``(1 - owned / cloud) * 100``; negative when owning costs more; None without cloud."""
    return None if cloud_usd <= 0 else (1.0 - owned_usd / cloud_usd) * 100.0


def break_even_month(own: Owned, cloud_monthly: float) -> float | None:
    """Month where owning has cost what renting has; None if the lines never cross."""
    gap = cloud_monthly - own.monthly_usd
    return own.upfront_usd / gap if gap > 0 else None


def break_even_utilization(
    owned_total: float, fixed: float, per_utilization: float
) -> float | None:
    """``u`` where ``fixed + per_utilization * u`` (renting over the horizon) equals owning;
    None when renting costs the same at any utilization (commitments) or never reaches it."""
    if per_utilization <= 0:
        return None
    return (owned_total - fixed) / per_utilization


def bisect_utilization(
    cost_at: Callable[[float], float], owned_total: float, high: float = 4.0
) -> float | None:
    """The ``u`` in (0, high] where the increasing ``cost_at(u)`` reaches ``owned_total``."""
    lo, hi = 0.0, high
    if cost_at(hi) < owned_total:
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost_at(mid) < owned_total else (lo, mid)
    return hi


def cost_per_million(total_usd: float, tokens: float) -> float | None:
    """USD per 1M tokens: ``total / tokens * 1e6``."""
    return total_usd / tokens * 1e6 if tokens > 0 else None


def tokens_made(
    units: Mapping[str, float], tokens_per_s: Mapping[str, float], utilization: float, months: int
) -> float:
    """Tokens a fleet makes in ``months`` if every busy hour runs at ``tokens_per_s`` per unit."""
    per_s = sum(n * tokens_per_s.get(t, 0.0) for t, n in units.items())
    return per_s * SECONDS_PER_HOUR * HOURS_PER_MONTH * months * utilization
