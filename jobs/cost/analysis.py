"""Put prices, usage, TCO and capacity together into plain numbers (pure; no files, no AWS).

Builders turn the inventory into cost rows (:func:`fleet_costs`); each view is a function of
plain inputs and returns a JSON-ready dict:

- :func:`planned_view`   the fleet at a target utilization over the horizon, per price option;
- :func:`measured_view`  the ledger's period: what was used, what the fleet cost, the cloud bill;
- :func:`token_view`     cost per 1M generated tokens at the benchmark's operating point;
- :func:`capacity_view`  the month-by-month plan for a growing load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cluster.inventory import CPU_TYPE, Inventory, Site
from jobs.cost import capacity as cap
from jobs.cost.bench import Bench, Level, operating_point
from jobs.cost.equivalence import UnitRate
from jobs.cost.prices import term_years
from jobs.cost.tco import (
    HOURS_PER_MONTH,
    NodeCost,
    SiteRates,
    break_even_month,
    cloud_cost,
    cloud_cumulative,
    cost_per_million_tokens,
    hourly_total,
    maintenance_per_year,
    node_cost,
    onprem_cumulative,
    per_unit_hourly,
    planned_savings_pct,
    savings_pct,
    setup_cost,
)
from jobs.cost.usage import (
    Period,
    fleet_utilization,
    node_hours_in,
    provisioned,
    usage_by,
    utilization,
)

OPTIONS = (
    "on-demand",
    "1yr No Upfront",
    "1yr All Upfront",
    "3yr No Upfront",
    "3yr All Upfront",
    "spot",
)
BUSY_PAID = ("on-demand", "spot")  # paid only while busy; reservations are paid every hour
UTILIZATION_GRID = [round(0.05 * i, 2) for i in range(1, 21)]


def site_rates(site: Site) -> SiteRates:
    return SiteRates(
        electricity_usd_per_kwh=site.electricity_usd_per_kwh,
        pue=site.pue,
        avg_power_fraction=site.avg_power_fraction,
        colocation_usd_per_kw_month=site.colocation_usd_per_kw_month,
        support_pct_per_year=site.support_pct_per_year,
        amortization_years=site.amortization_years,
        staff_usd_per_year=site.staff_usd_per_year,
        setup_usd=site.setup_usd,
    )


def fleet_costs(inv: Inventory, site: SiteRates) -> list[NodeCost]:
    """Hourly cost rows of every node (the staff share split evenly across the fleet)."""
    return [
        node_cost(
            n.name,
            n.accelerator_type,
            n.gpu_count or n.cpus,
            n.purchase_usd,
            n.power_w,
            site,
            len(inv.nodes),
        )
        for n in inv.nodes
    ]


def fleet_units(inv: Inventory) -> dict[str, float]:
    """Units per accelerator type: GPUs for GPU types, CPUs for CPU-only nodes."""
    out: dict[str, float] = {}
    for n in inv.nodes:
        out[n.accelerator_type] = out.get(n.accelerator_type, 0) + (n.gpu_count or n.cpus)
    return out


def _prices(rates: Mapping[str, UnitRate], types: Sequence[str], option: str) -> dict:
    return {t: rates[t].option(option) for t in types}


def planned_view(
    inv: Inventory,
    site: SiteRates,
    rates: Mapping[str, UnitRate],
    target_utilization: float,
    months: int,
) -> dict[str, Any]:
    """The fleet over ``months`` at ``target_utilization``: on-prem cash vs each cloud option."""
    nodes = fleet_costs(inv, site)
    upfront = setup_cost(nodes, site)
    opex_monthly = maintenance_per_year(nodes) / 12
    units = fleet_units(inv)
    onprem_cum = onprem_cumulative(months, upfront, opex_monthly)
    options: dict[str, dict[str, Any]] = {}
    for opt in OPTIONS:
        prices = _prices(rates, list(units), opt)
        missing = sorted(t for t, v in prices.items() if v is None)
        if missing:
            options[opt] = {"available": False, "missing": missing}
            continue
        full = cloud_cost(units, prices)
        if opt in BUSY_PAID:
            monthly = full * HOURS_PER_MONTH * target_utilization
            cumulative = cloud_cumulative(months, monthly)
        else:
            hourly_part = cloud_cost(units, {t: rates[t].reserved_hourly[opt] for t in units})
            upfront_part = cloud_cost(units, {t: rates[t].reserved_upfront[opt] for t in units})
            monthly = full * HOURS_PER_MONTH  # effective: the upfront spread over the term
            cumulative = cloud_cumulative(
                months, hourly_part * HOURS_PER_MONTH, upfront_part, 12 * term_years(opt)
            )
        options[opt] = {
            "available": True,
            "full_hourly_usd": full,
            "monthly_usd": monthly,
            "cumulative_usd": cumulative,
            "total_usd": cumulative[-1],
            "savings_pct": savings_pct(onprem_cum[-1], cumulative[-1]),
            "break_even_month": break_even_month(upfront, opex_monthly, monthly),
        }
    curve = {}
    for opt in BUSY_PAID:
        if options[opt]["available"]:
            full_monthly = options[opt]["full_hourly_usd"] * HOURS_PER_MONTH
            curve[opt] = [
                planned_savings_pct(upfront, opex_monthly, full_monthly, u, months)
                for u in UTILIZATION_GRID
            ]
    od = options["on-demand"]
    break_even_u = (
        onprem_cum[-1] / (od["full_hourly_usd"] * HOURS_PER_MONTH * months)
        if od["available"]
        else None
    )
    return {
        "fleet": inv.fleet,
        "summary": inv.summary(),
        "months": months,
        "target_utilization": target_utilization,
        "nodes": [_node_row(n) for n in nodes],
        "units": units,
        "capex_usd": sum(n.capex_usd for n in nodes),
        "site_setup_usd": site.setup_usd,
        "setup_usd": upfront,
        "maintenance_per_year_usd": opex_monthly * 12,
        "opex_monthly_usd": opex_monthly,
        "hourly_total_usd": hourly_total(nodes),
        "onprem_cumulative_usd": onprem_cum,
        "onprem_total_usd": onprem_cum[-1],
        "options": options,
        "utilization_grid": UTILIZATION_GRID,
        "savings_curve_pct": curve,
        "break_even_utilization": break_even_u,
    }


def _node_row(n: NodeCost) -> dict[str, Any]:
    return {
        "node": n.name,
        "accelerator_type": n.accelerator_type,
        "units": n.units,
        "capex_usd": n.capex_usd,
        "depreciation_usd_h": n.depreciation,
        "power_usd_h": n.power,
        "colocation_usd_h": n.colocation,
        "support_usd_h": n.support,
        "staff_usd_h": n.staff,
        "opex_usd_h": n.opex,
        "total_usd_h": n.total,
    }


def _unit_hours(hours: Mapping[str, Any], attr_gpu: str, attr_cpu: str) -> dict[str, float]:
    return {t: float(getattr(h, attr_cpu if t == CPU_TYPE else attr_gpu)) for t, h in hours.items()}


def measured_view(
    inv: Inventory,
    site: SiteRates,
    rates: Mapping[str, UnitRate],
    rows: Sequence[Mapping[str, Any]],
    period: Period,
) -> dict[str, Any]:
    """The ledger's period: used vs provisioned hours, what the fleet cost busy or idle, and
    what the same work would have cost in the cloud (reservations cover the fleet's capacity)."""
    nodes = fleet_costs(inv, site)
    by_node = {n.name: n for n in nodes}
    onprem = sum(by_node[n.name].total * node_hours_in(n, period) for n in inv.nodes)
    used = usage_by(rows, "accelerator_type")
    prov = provisioned(inv.nodes, period)
    used_units = _unit_hours(used, "gpu_hours", "cpu_hours")
    prov_units = _unit_hours(prov, "gpu_hours", "cpu_hours")
    cloud: dict[str, float | None] = {}
    for opt in OPTIONS:
        amounts = used_units if opt in BUSY_PAID else prov_units
        try:
            cloud[opt] = cloud_cost(amounts, _prices(rates, list(amounts), opt))
        except KeyError:
            cloud[opt] = None
    types = sorted(set(used) | set(prov))
    return {
        "fleet": inv.fleet,
        "summary": inv.summary(),
        "period": {
            "since": period.since.isoformat(),
            "until": period.until.isoformat(),
            "hours": period.hours,
        },
        "rows": len(rows),
        "nodes": [_node_row(n) for n in nodes],
        "by_type": [
            {
                "accelerator_type": t,
                "gpu_hours": used[t].gpu_hours if t in used else 0.0,
                "cpu_hours": used[t].cpu_hours if t in used else 0.0,
                "node_hours": used[t].node_hours if t in used else 0.0,
                "provisioned_gpu_hours": prov[t].gpu_hours if t in prov else 0.0,
                "provisioned_cpu_hours": prov[t].cpu_hours if t in prov else 0.0,
                "provisioned_node_hours": prov[t].node_hours if t in prov else 0.0,
                "utilization": utilization(used.get(t), prov.get(t)),
                "in_fleet": t in prov,
            }
            for t in types
        ],
        "by_kind": [
            {"kind_type": k, **vars(h)}
            for k, h in usage_by(rows, "kind", "accelerator_type").items()
        ],
        "utilization": fleet_utilization(used, prov),
        "onprem_usd": onprem,
        "cloud_usd": cloud,
        "savings_pct": savings_pct(onprem, cloud["on-demand"] or 0.0),
        "not_in_fleet": [t for t in used if t not in prov],
    }


def token_view(
    bench: Bench,
    slo_s: float | None,
    bench_replicas: int,
    accelerator_type: str,
    units_per_replica: float,
    nodes: Sequence[NodeCost],
    rates: Mapping[str, UnitRate],
    target_utilization: float,
) -> dict[str, Any]:
    """USD per 1M generated tokens at the operating point, owned vs rented."""
    level = operating_point(bench.levels, slo_s)
    out: dict[str, Any] = {"slo_p95_s": slo_s, "level": _level_row(level) if level else None}
    if level is None:
        best = min(bench.levels, key=lambda lv: lv.e2e_p95_s)
        out["reason"] = (
            f"no level meets p95 <= {slo_s} s (best p95 {best.e2e_p95_s:.2f} s at "
            f"concurrency {best.concurrency})"
        )
        return out
    tps = level.output_tokens_per_s / bench_replicas
    per_unit = per_unit_hourly(nodes, accelerator_type)
    local_hourly = per_unit * units_per_replica if per_unit is not None else None
    rate = rates[accelerator_type]
    cloud = {}
    for opt in OPTIONS:
        price = rate.option(opt)
        u = 1.0 if opt in BUSY_PAID else target_utilization
        cloud[opt] = (
            cost_per_million_tokens(price * units_per_replica, tps, u)
            if price is not None
            else None
        )
    out.update(
        replica_tokens_per_s=tps,
        replica_units=units_per_replica,
        accelerator_type=accelerator_type,
        local_hourly_usd=local_hourly,
        local_per_1m_full_usd=cost_per_million_tokens(local_hourly, tps) if local_hourly else None,
        local_per_1m_target_usd=(
            cost_per_million_tokens(local_hourly, tps, target_utilization) if local_hourly else None
        ),
        cloud_per_1m_usd=cloud,
        instance_type=rate.instance_type,
    )
    return out


def _level_row(lv: Level) -> dict[str, Any]:
    return dict(vars(lv))


def capacity_view(
    shape: cap.Shape,
    requests_per_s: float | None,
    tokens_per_day: float | None,
    output_tokens: int,
    growth_pct_per_month: float,
    months: int,
    headroom: float,
) -> dict[str, Any]:
    """The month-by-month plan and its headline numbers."""
    rps, tps = cap.base_load(requests_per_s, tokens_per_day, output_tokens)
    plan = cap.plan(shape, rps, tps, growth_pct_per_month, months, headroom)
    last = plan[-1]
    return {
        "shape": vars(shape),
        "base_requests_per_s": rps,
        "base_tokens_per_s": tps,
        "months": [m.row() for m in plan],
        "replicas_first": plan[0].replicas,
        "replicas_last": last.replicas,
        "nodes_to_buy": last.nodes,
        "instances_last": last.instances,
        "onprem_total_usd": last.onprem_cumulative_usd,
        "cloud_total_usd": last.cloud_cumulative_usd,
        "crossover_month": cap.crossover_month(plan),
    }
