"""Put prices, usage, TCO and capacity together into plain numbers and frames (pure).

- :func:`fleet_view`   a fleet at a utilization over the horizon, against every AWS option,
  the cheapest one able to carry it, and on-demand;
- :func:`token_view`   a fleet's USD per 1M tokens (planned throughput) vs AWS and the APIs;
- :func:`sensitivity`  what moves the headline: staff, capex, a commitment discount, resale
  value, utilization;
- :func:`measured_view`  the ledger's period on the measured fleet (in words when it idled);
- :func:`bench_view`, :func:`capacity_view`  the benchmark's operating point and the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cluster.inventory import Inventory, Site
from jobs.cost import capacity as cap
from jobs.cost.bench import Bench, operating_point
from jobs.cost.equivalence import UnitRate
from jobs.cost.prices import OPTIONS, Price
from jobs.cost.tco import (
    HOURS_PER_MONTH,
    SiteRates,
    bisect_utilization,
    break_even_month,
    break_even_utilization,
    cheapest,
    cost_per_million,
    mix_name,
    node_costs,
    option_parts,
    owned,
    price_frame,
    rent_costs,
    savings_pct,
    terms_begun,
    tokens_made,
)
from jobs.cost.usage import HOURS, Period, node_hours_in, provisioned, unit_hours, usage_frame

UTILIZATION_GRID = np.round(np.arange(0.05, 1.0001, 0.05), 2)
IDLE = 0.10  # below this measured utilization a savings percentage says nothing useful


def site_rates(site: Site) -> SiteRates:
    return SiteRates(**{k: getattr(site, k) for k in SiteRates.__dataclass_fields__})


def fleet_nodes(inv: Inventory, site: SiteRates) -> pd.DataFrame:
    rows = [
        (n.name, n.accelerator_type, n.gpu_count or n.cpus, n.purchase_usd, n.power_w)
        for n in inv.nodes
    ]
    return node_costs(rows, site)


def fleet_view(
    inv: Inventory,
    site: SiteRates,
    rates: Mapping[str, UnitRate],
    utilization: float,
    months: int,
    extra: Mapping[str, Mapping[str, Price]] | None = None,
) -> dict[str, Any]:
    """Owning ``inv`` for ``months`` at ``utilization`` vs renting the same units under each
    option (``extra``: hypothetical prices per type, for the sensitivity table)."""
    nodes = fleet_nodes(inv, site)
    own = owned(nodes, site)
    owned_curve = own.cumulative(months)
    total = float(owned_curve[-1])
    units = nodes.groupby("accelerator_type", sort=False)["units"].sum().to_dict()
    prices = price_frame(units, {t: {**rates[t].prices, **(extra or {}).get(t, {})} for t in units})
    capital = site.cost_of_capital_pct
    keys = list(zip(prices["accelerator_type"], prices["option"], strict=True))
    costs = rent_costs(prices, utilization, months, capital)  # (type, option) x months
    curve = dict(zip(keys, costs.to_numpy(), strict=True))
    fixed = dict(zip(keys, rent_costs(prices, 0.0, months, capital).iloc[:, -1], strict=True))
    per_u = {
        k: c - fixed[k]
        for k, c in zip(  # what each busy share of the hours adds
            keys, rent_costs(prices, 1.0, months, capital).iloc[:, -1], strict=True
        )
    }
    busy = dict(zip(keys, prices["busy_paid"], strict=True))
    monthly = dict(
        zip(
            keys,
            prices["units"]
            * prices["effective_usd_h"]
            * HOURS_PER_MONTH
            * np.where(prices["busy_paid"], utilization, 1.0),
            strict=True,
        )
    )
    upfront = dict(
        zip(
            keys,
            prices["units"]
            * prices["upfront_usd"]
            * [terms_begun(o, months) for o in prices["option"]],
            strict=True,
        )
    )

    def row(name: str, parts: Sequence[tuple[str, str]], linear: bool = True) -> dict[str, Any]:
        cost = sum(curve[p] for p in parts)
        paid = {busy[p] for p in parts}
        per_month = float(sum(monthly[p] for p in parts))
        return {
            "option": name,
            "upfront_usd": float(sum(upfront[p] for p in parts)),
            "paid_for": "mixed"
            if len(paid) > 1
            else ("hours used" if True in paid else "every hour"),
            "on_demand_for": [t for t, o in parts if o != name and o == "on-demand"],
            "total_usd": float(cost[-1]),
            "monthly_usd": per_month,
            "savings_pct": savings_pct(total, float(cost[-1])),
            "break_even_month": break_even_month(own, per_month),
            "break_even_utilization": break_even_utilization(
                total, sum(fixed[p] for p in parts), sum(per_u[p] for p in parts)
            )
            if linear
            else None,
            "curve": cost,
        }

    names = list(dict.fromkeys([*OPTIONS, *prices["option"]]))
    parts_of = option_parts(costs.index, list(units), names)
    rows = {o: row(o, parts) for o, parts in parts_of.items()}
    options = pd.DataFrame(list(rows.values())).set_index("option")
    choice = cheapest(costs)
    best = row(mix_name(choice), list(choice.items()), linear=False)
    # the option whose curve the cheapest mix is (None when it mixes several deals)
    best["same_as"] = next((o for o, ps in parts_of.items() if ps == list(choice.items())), None)
    lines = [  # per type, each option able to carry the workload: cost = fixed + per_u * u
        (np.array([fixed[k] for k in ks]), np.array([per_u[k] for k in ks]))
        for ks in ([k for k in keys if k[0] == t and k[1] != "spot"] for t in units)
    ]

    def cheapest_at(u: float) -> float:
        return float(sum((f + p * u).min() for f, p in lines))

    best.update(break_even_utilization=bisect_utilization(cheapest_at, total), choice=choice)
    curve_of = {
        o: (sum(fixed[p] for p in ps), sum(per_u[p] for p in ps)) for o, ps in parts_of.items()
    }
    grid = pd.DataFrame(
        {
            o: [savings_pct(total, f + p * u) for u in UTILIZATION_GRID]
            for o, (f, p) in curve_of.items()
        }
        | {"cheapest": [savings_pct(total, cheapest_at(u)) for u in UTILIZATION_GRID]},
        index=pd.Index(UTILIZATION_GRID, name="utilization"),
    )
    cumulative = pd.DataFrame(
        {"owned": owned_curve, **options["curve"].to_dict(), "cheapest": best["curve"]}
    ).rename_axis("month")
    return {
        "fleet": inv.fleet,
        "summary": inv.summary(),
        "months": months,
        "utilization": utilization,
        "nodes": nodes,
        "units": units,
        "instances": {t: rates[t].instance_type for t in units},
        "owned": own.__dict__
        | {"upfront_usd": own.upfront_usd, "monthly_usd": own.monthly_usd, "total_usd": total},
        "prices": prices,
        "options": options.drop(columns="curve"),
        "cheapest": {k: v for k, v in best.items() if k != "curve"},
        "on_demand": {k: v for k, v in rows["on-demand"].items() if k != "curve"},
        "cumulative": cumulative,
        "savings_curve": grid,
    }


def token_view(
    view: dict[str, Any],
    serve_tokens_per_s: Mapping[str, float],
    train_tokens_per_s: Mapping[str, float],
    api: Sequence[Any],
    prompt_tokens: int,
    output_tokens: int,
) -> dict[str, Any]:
    """USD per 1M tokens of a fleet if every busy hour serves (or fine-tunes) at the planned
    rates, owned and rented, against what the APIs charge for the same tokens."""
    u, months, units = view["utilization"], view["months"], view["units"]
    served = tokens_made(units, serve_tokens_per_s, u, months)
    trained = tokens_made(units, train_tokens_per_s, u, months)
    totals = {
        "owned": view["owned"]["total_usd"],
        "cheapest AWS": view["cheapest"]["total_usd"],
        "AWS on-demand": view["on_demand"]["total_usd"],
    }
    rows = [
        {
            "who": who,
            "serve_usd_per_1m": cost_per_million(t, served),
            "train_usd_per_1m": cost_per_million(t, trained),
        }
        for who, t in totals.items()
    ]
    rows += [
        {
            "who": a.name,
            "serve_usd_per_1m": a.per_1m_output(prompt_tokens, output_tokens),
            "train_usd_per_1m": a.training_usd_per_1m,
        }
        for a in api
    ]
    table = pd.DataFrame(rows).set_index("who")
    own = view["owned"]
    team = api[0].per_1m_output(prompt_tokens, output_tokens)  # what the team pays today
    bill = served * team / 1e6  # the API's bill for the same tokens over the horizon
    gap = bill / months - own["monthly_usd"]
    return {
        "fleet": view["fleet"],
        "tokens_per_month": served / months,
        "train_tokens_per_month": trained / months,
        "table": table,
        "api_break_even_tokens_per_month": own["total_usd"] / months / team * 1e6,
        "api": {
            "total_usd": bill,
            "per_year_usd": bill / months * 12,
            "savings_pct": savings_pct(own["total_usd"], bill),
            "break_even_month": own["upfront_usd"] / gap if gap > 0 else None,
            "break_even_utilization": own["total_usd"] / (bill / u) if bill else None,
        },
    }


def sensitivity(
    inv: Inventory,
    site: SiteRates,
    rates: Mapping[str, UnitRate],
    utilization: float,
    months: int,
) -> pd.DataFrame:
    """Savings vs the cheapest AWS option when one input moves, the others as configured.
    Each variant: (what changes, to what, capex factor, site changes, utilization, commitment
    discount of a hypothetical 3-year commitment offered for every type)."""
    staff = site.staff_usd_per_node_year
    variants = [
        ("as configured", "-", 1.0, {}, utilization, None),
        ("staff per server and year", "$0", 1.0, {"staff_usd_per_node_year": 0}, utilization, None),
        (
            "staff per server and year",
            f"${3 * staff:,.0f} (3x)",
            1.0,
            {"staff_usd_per_node_year": 3 * staff},
            utilization,
            None,
        ),
        ("capex", "-20%", 0.8, {}, utilization, None),
        ("capex", "+20%", 1.2, {}, utilization, None),
        ("commitment discount", "40% off, 3yr (hypothetical)", 1.0, {}, utilization, 0.4),
        ("commitment discount", "60% off, 3yr (hypothetical)", 1.0, {}, utilization, 0.6),
        ("residual value", "20% of capex", 1.0, {"residual_value_pct": 20}, utilization, None),
        ("residual value", "40% of capex", 1.0, {"residual_value_pct": 40}, utilization, None),
        ("utilization", "30%", 1.0, {}, 0.3, None),
        ("utilization", "90%", 1.0, {}, 0.9, None),
    ]
    rows = []
    for what, to, capex, change, u, off in variants:
        nodes = [n.model_copy(update={"purchase_usd": n.purchase_usd * capex}) for n in inv.nodes]
        name = f"hypothetical 3yr commitment, {off or 0:.0%} off on-demand"
        extra = (
            {
                t: {
                    name: Price(
                        hourly_usd=r.on_demand * (1 - off), source="hypothetical", as_of="-"
                    )
                }
                for t, r in rates.items()
            }
            if off
            else None
        )
        v = fleet_view(
            inv.model_copy(update={"nodes": nodes}),
            SiteRates(**{**site.__dict__, **change}),
            rates,
            u,
            months,
            extra,
        )
        rows.append(
            {
                "what changes": what,
                "to": to,
                "owned_total_usd": v["owned"]["total_usd"],
                "savings_vs_cheapest_pct": v["cheapest"]["savings_pct"],
                "cheapest_option": v["cheapest"]["option"],
                "savings_vs_on_demand_pct": v["on_demand"]["savings_pct"],
            }
        )
    return pd.DataFrame(rows)


def measured_view(
    inv: Inventory,
    site: SiteRates,
    rates: Mapping[str, UnitRate],
    rows: Sequence[Mapping[str, Any]],
    period: Period,
) -> dict[str, Any]:
    """The ledger's period: what was used, what the fleet cost busy or idle, and what the same
    busy hours would have cost on AWS on-demand."""
    nodes = fleet_nodes(inv, site)
    alive = np.array([node_hours_in(n, period) for n in inv.nodes])
    owned_usd = float((nodes["total_usd_h"].to_numpy() * alive).sum())
    usage = usage_frame(rows)
    used = usage.groupby("accelerator_type")[HOURS].sum()
    prov = provisioned(inv.nodes, period)
    by_type = prov.join(used, how="outer", lsuffix="_provisioned", rsuffix="_used").fillna(0.0)
    used_units = unit_hours(used) if len(used) else pd.Series(dtype=float)
    prov_units = unit_hours(prov)
    by_type["utilization"] = (used_units.reindex(by_type.index).fillna(0) / prov_units).where(
        by_type.index.isin(prov.index)
    )
    cloud = float(sum(h * rates[t].on_demand for t, h in used_units.items()))
    rate = sum(h * rates[t].on_demand for t, h in prov_units.items()) / prov_units.sum()
    busy = float(used_units.reindex(prov.index).fillna(0).sum())
    gpu = (prov.index != "CPU").any()
    key = "gpu_hours" if gpu else "cpu_hours"
    util = (
        float(used[key].reindex(prov.index).fillna(0).sum() / prov[key].sum())
        if prov[key].sum()
        else None
    )
    return {
        "fleet": inv.fleet,
        "summary": inv.summary(),
        "period": {
            "since": period.since.isoformat(),
            "until": period.until.isoformat(),
            "hours": period.hours,
        },
        "rows": len(rows),
        "nodes": nodes,
        "by_type": by_type.reset_index(),
        "by_kind": usage.groupby(["kind", "accelerator_type", "status"])[HOURS].sum().reset_index(),
        "utilization": util,
        "unit": "GPU" if gpu else "CPU",
        "busy_unit_hours": busy,
        "provisioned_unit_hours": float(prov_units.sum()),
        "owned_usd": owned_usd,
        "owned_per_busy_unit_hour": owned_usd / busy if busy else None,
        "cloud_on_demand_usd": cloud,
        "on_demand_per_unit_hour": rate,  # AWS on-demand per GPU- or vCPU-hour of this fleet
        "idle": util is None or util < IDLE,
        "savings_pct": savings_pct(owned_usd, cloud) if util is not None and util >= IDLE else None,
        "not_in_fleet": sorted(set(used.index) - set(prov.index)),
    }


def bench_view(
    bench: Bench,
    slo_s: float | None,
    bench_replicas: int,
    accelerator_type: str,
    units_per_replica: float,
    nodes: pd.DataFrame,
    rate: UnitRate,
    utilization: float,
) -> dict[str, Any]:
    """The measured fleet's benchmark: operating point and USD per 1M generated tokens."""
    level = operating_point(bench.levels, slo_s)
    out: dict[str, Any] = {"slo_p95_s": slo_s, "level": dict(vars(level)) if level else None}
    if level is None:
        best = min(bench.levels, key=lambda lv: lv.e2e_p95_s)
        out["reason"] = (
            f"no level meets p95 <= {slo_s} s (best p95 {best.e2e_p95_s:.2f} s at "
            f"concurrency {best.concurrency})"
        )
        return out
    tps = level.output_tokens_per_s / bench_replicas
    mine = nodes[nodes["accelerator_type"] == accelerator_type]
    per_unit = mine["total_usd_h"].sum() / mine["units"].sum() if len(mine) else None
    hourly = per_unit * units_per_replica if per_unit is not None else None
    hour_tokens = tps * 3600
    out.update(
        replica_tokens_per_s=tps,
        replica_units=units_per_replica,
        accelerator_type=accelerator_type,
        instance_type=rate.instance_type,
        owned_hourly_usd=hourly,
        per_1m={
            "owned, busy every hour": cost_per_million(hourly, hour_tokens) if hourly else None,
            f"owned, {utilization:.0%} busy": (
                cost_per_million(hourly, hour_tokens * utilization) if hourly else None
            ),
            **{
                f"AWS {rate.instance_type} {o} (hours used)": cost_per_million(
                    rate.prices[o].hourly_usd * units_per_replica, hour_tokens
                )
                for o in ("on-demand", "spot", "Capacity Block")
                if o in rate.prices
            },
        },
    )
    return out


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
    return {
        "shape": vars(shape),
        "base_requests_per_s": rps,
        "base_tokens_per_s": tps,
        "months": pd.DataFrame([m.row() for m in plan]),
        "nodes_to_buy": plan[-1].nodes,
        "instances_last": plan[-1].instances,
        "crossover_month": cap.crossover_month(plan),
    }
