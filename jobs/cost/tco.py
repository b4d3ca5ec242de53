"""Total cost of ownership: on-prem vs cloud, as pure functions of the inputs.

On-prem hourly cost of one node (USD/hour; ``site`` figures from ``cluster/inventory.yaml``)::

    depreciation = capex / (amortization_years * 8760)
    power        = power_w / 1000 * avg_power_fraction * pue * usd_per_kwh
    colocation   = power_w / 1000 * colocation_usd_per_kw_month * 12 / 8760
    support      = support_pct_per_year / 100 * capex / 8760
    staff        = staff_usd_per_year / 8760 / nodes_in_fleet
    total        = depreciation + power + colocation + support + staff
    opex         = total - depreciation        (what keeps running: "maintenance")

Setup cost = capex of every node + ``site.setup_usd``; maintenance per year = opex * 8760.

Over a horizon of months, cumulative on-prem cost is ``capex + setup + opex_monthly * m``
(cash: the hardware is paid up front; its value after the horizon is ignored, which favours
the cloud). Cumulative cloud cost is ``cloud_monthly * m`` (plus the upfront payment at the
start of each reserved term). Break-even is the month where the two lines cross, and exists
only when the cloud costs more per month than on-prem opex:
``m = (capex + setup) / (cloud_monthly - opex_monthly)``.

Cloud cost of the same work, at utilization ``u`` of the fleet's capacity: on-demand and spot
are paid only while busy (``full_hourly * u``); a reservation is paid for every hour of its
term, busy or idle, like the fleet itself (``full_hourly``). Savings therefore fall as
utilization falls: idle on-prem hours still cost money, idle cloud hours do not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HOURS_PER_YEAR = 8760.0
HOURS_PER_MONTH = HOURS_PER_YEAR / 12  # 730
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class SiteRates:
    """The site's cost figures (the inventory's ``site``; all per the units named)."""

    electricity_usd_per_kwh: float
    pue: float
    avg_power_fraction: float
    colocation_usd_per_kw_month: float
    support_pct_per_year: float
    amortization_years: float
    staff_usd_per_year: float
    setup_usd: float


@dataclass(frozen=True)
class NodeCost:
    """Hourly cost of one node, by component (USD/hour)."""

    name: str
    accelerator_type: str
    units: int  # GPUs on a GPU node, CPUs on a CPU-only node
    capex_usd: float
    depreciation: float
    power: float
    colocation: float
    support: float
    staff: float

    @property
    def opex(self) -> float:
        return self.power + self.colocation + self.support + self.staff

    @property
    def total(self) -> float:
        return self.depreciation + self.opex


def node_cost(
    name: str,
    accelerator_type: str,
    units: int,
    capex_usd: float,
    power_w: float,
    site: SiteRates,
    nodes_in_fleet: int,
) -> NodeCost:
    """One node's hourly cost (formulas in the module docstring)."""
    kw = power_w / 1000.0
    return NodeCost(
        name=name,
        accelerator_type=accelerator_type,
        units=units,
        capex_usd=capex_usd,
        depreciation=capex_usd / (site.amortization_years * HOURS_PER_YEAR),
        power=kw * site.avg_power_fraction * site.pue * site.electricity_usd_per_kwh,
        colocation=kw * site.colocation_usd_per_kw_month * 12 / HOURS_PER_YEAR,
        support=site.support_pct_per_year / 100.0 * capex_usd / HOURS_PER_YEAR,
        staff=site.staff_usd_per_year / HOURS_PER_YEAR / max(nodes_in_fleet, 1),
    )


def setup_cost(nodes: Iterable[NodeCost], site: SiteRates) -> float:
    """One-off cost: the purchase of every node plus the site's setup."""
    return sum(n.capex_usd for n in nodes) + site.setup_usd


def maintenance_per_year(nodes: Iterable[NodeCost]) -> float:
    """Running cost per year: power, colocation, support and staff (not depreciation)."""
    return sum(n.opex for n in nodes) * HOURS_PER_YEAR


def hourly_total(nodes: Iterable[NodeCost]) -> float:
    """Amortized on-prem cost of the whole fleet per hour, busy or idle."""
    return sum(n.total for n in nodes)


def per_unit_hourly(nodes: Iterable[NodeCost], accelerator_type: str) -> float | None:
    """On-prem cost per GPU-hour (or CPU-hour) of one accelerator type, amortized."""
    chosen = [n for n in nodes if n.accelerator_type == accelerator_type]
    units = sum(n.units for n in chosen)
    return sum(n.total for n in chosen) / units if units else None


def cost_of_hours(hourly_usd: float, hours: float) -> float:
    """Cost scales linearly with hours: ``hourly * hours``."""
    return hourly_usd * hours


def cloud_cost(amounts: Mapping[str, float], unit_prices: Mapping[str, float | None]) -> float:
    """``sum(amounts[t] * price[t])`` over accelerator types: with amounts in units (GPUs,
    vCPUs) it is USD per hour, with unit-hours it is USD. Raises KeyError naming a type that
    has no price for this option."""
    total = 0.0
    for accel, count in amounts.items():
        price = unit_prices.get(accel)
        if price is None:
            raise KeyError(accel)
        total += count * price
    return total


def onprem_cumulative(months: int, upfront: float, opex_monthly: float) -> list[float]:
    """Cumulative on-prem cash at the end of months 0..months: ``upfront + opex * m``."""
    return [upfront + opex_monthly * m for m in range(months + 1)]


def cloud_cumulative(
    months: int, monthly: float, upfront_per_term: float = 0.0, term_months: int | None = None
) -> list[float]:
    """Cumulative cloud cost at the end of months 0..months: ``monthly * m`` plus an upfront
    payment at the start of every reserved term that has begun."""
    out = []
    for m in range(months + 1):
        terms = max(1, math.ceil(m / term_months)) if term_months and upfront_per_term else 0
        out.append(monthly * m + upfront_per_term * terms)
    return out


def break_even_month(upfront: float, opex_monthly: float, cloud_monthly: float) -> float | None:
    """Month where cumulative on-prem cost meets the cloud's, or None when the cloud costs no
    more per month than on-prem opex (the lines never cross)."""
    if cloud_monthly <= opex_monthly:
        return None
    return upfront / (cloud_monthly - opex_monthly)


def savings_pct(onprem_usd: float, cloud_usd: float) -> float | None:
    """``(1 - onprem / cloud) * 100``; negative when on-prem costs more; None without cloud."""
    if cloud_usd <= 0:
        return None
    return (1.0 - onprem_usd / cloud_usd) * 100.0


def planned_savings_pct(
    upfront: float,
    opex_monthly: float,
    cloud_full_monthly: float,
    utilization: float,
    months: int,
) -> float | None:
    """Savings over ``months`` of an owned fleet vs paying the cloud only for the busy share
    (on-demand or spot) of the same capacity: ``cloud = cloud_full_monthly * u * months``."""
    onprem = upfront + opex_monthly * months
    return savings_pct(onprem, cloud_full_monthly * utilization * months)


def break_even_utilization(onprem_hourly: float, cloud_full_hourly: float) -> float | None:
    """Utilization above which owning is cheaper than paying by the hour (amortized view):
    ``onprem_hourly / cloud_full_hourly``; may exceed 1 (owning never pays)."""
    return onprem_hourly / cloud_full_hourly if cloud_full_hourly > 0 else None


def cost_per_million_tokens(
    hourly_usd: float, tokens_per_s: float, utilization: float = 1.0
) -> float | None:
    """USD per 1M generated tokens: ``hourly / (tokens_per_s * 3600 * utilization) * 1e6``.

    For an owned replica ``utilization`` is the share of hours it serves (idle hours are paid
    too); for cloud capacity paid only while busy, leave it at 1.
    """
    if tokens_per_s <= 0 or utilization <= 0:
        return None
    return hourly_usd / (tokens_per_s * SECONDS_PER_HOUR * utilization) * 1e6
