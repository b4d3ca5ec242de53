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
from jobs.cost import tco
from jobs.cost.bench import Bench, operating_point
from jobs.cost.equivalence import UnitRate
from jobs.cost.prices import BUSY_PAID, OPTIONS, Price
from jobs.cost.usage import HOURS, Period, node_hours_in, provisioned, unit_hours, usage_frame

UTILIZATION_GRID = np.round(np.arange(0.05, 1.0001, 0.05), 2)
IDLE = 0.10  # below this measured utilization a savings percentage says nothing useful
PAID_FOR = {True: "hours used", False: "every hour"}


def fleet_nodes(inv: Inventory, site: Site) -> pd.DataFrame:
    rows = [
        (n.name, n.accelerator_type, n.gpu_count or n.cpus, n.purchase_usd, n.power_w)
        for n in inv.nodes
    ]
    return tco.node_costs(rows, site)


def fleet_view(
    inv: Inventory,
    site: Site,
    rates: Mapping[str, UnitRate],
    utilization: float,
    months: int,
    extra: Mapping[str, Mapping[str, Price]] | None = None,
) -> dict[str, Any]:
    """Owning ``inv`` for ``months`` at ``utilization`` vs renting the same units under each
    option (``extra``: hypothetical prices per type, for the sensitivity table)."""
    nodes = fleet_nodes(inv, site)
    own = tco.owned(nodes, site)
    owned_curve = own.cumulative(months)
    total = float(owned_curve[-1])
    units = nodes.groupby("accelerator_type", sort=False)["units"].sum().to_dict()
    book = {t: {**rates[t].prices, **(extra or {}).get(t, {})} for t in units}
    df = tco.price_frame(units, book, months)
    capital = site.cost_of_capital_pct
    costs = tco.rent_costs(df, utilization, months, capital)  # (type, option) x months
    df["fixed"] = tco.rent_costs(df, 0.0, months, capital).iloc[:, -1]  # paid used or not
    df["per_u"] = tco.rent_costs(df, 1.0, months, capital).iloc[:, -1] - df["fixed"]
    df["monthly"] = df.units * df.effective_usd_h * tco.HOURS_PER_MONTH
    df.loc[df.busy_paid, "monthly"] *= utilization
    df["upfront"] = df.units * df.upfront_usd * df.terms

    def row(name: str, parts: list[tuple[str, str]]) -> dict[str, Any]:
        sel, cost = df.loc[parts], costs.loc[parts].sum().to_numpy()
        paid = set(sel.busy_paid)
        return {
            "option": name,
            "paid_for": "mixed" if len(paid) > 1 else PAID_FOR[paid.pop()],
            "on_demand_for": [t for t, o in parts if o != name and o == "on-demand"],
            "upfront_usd": float(sel.upfront.sum()),
            "monthly_usd": float(sel.monthly.sum()),
            "total_usd": float(cost[-1]),
            "savings_pct": tco.savings_pct(total, float(cost[-1])),
            "break_even_month": tco.break_even_month(own, float(sel.monthly.sum())),
            "break_even_utilization": tco.break_even_utilization(
                total, sel.fixed.sum(), sel.per_u.sum()
            ),
            "fixed_usd": float(sel.fixed.sum()),  # the option over the horizon: fixed + per_u * u
            "per_u_usd": float(sel.per_u.sum()),
            "curve": cost,
        }

    names = list(dict.fromkeys([*OPTIONS, *df.index.get_level_values(1)]))
    parts_of = tco.option_parts(df.index, list(units), names)
    rows = {o: row(o, parts) for o, parts in parts_of.items()}
    options = pd.DataFrame(list(rows.values())).set_index("option")
    choice = tco.cheapest(costs)
    best = row(tco.mix_name(choice), list(choice.items()))
    lines = [
        (g.fixed.to_numpy(), g.per_u.to_numpy())  # per type, the options able to carry it
        for _, g in df.drop(index=list(tco.HEADLINE_EXCLUDED), level=1, errors="ignore").groupby(
            level=0
        )
    ]

    def cheapest_at(u: float) -> float:
        return float(sum((f + p * u).min() for f, p in lines))

    best.update(
        break_even_utilization=tco.bisect_utilization(cheapest_at, total),
        choice=choice,
        # the option whose curve the cheapest mix is (None when it mixes several deals)
        same_as=next((o for o, ps in parts_of.items() if ps == list(choice.items())), None),
    )
    grid = pd.DataFrame(
        {
            o: [tco.savings_pct(total, r.fixed_usd + r.per_u_usd * u) for u in UTILIZATION_GRID]
            for o, r in options.iterrows()
        }
        | {"cheapest": [tco.savings_pct(total, cheapest_at(u)) for u in UTILIZATION_GRID]},
        index=pd.Index(UTILIZATION_GRID, name="utilization"),
    )
    cumulative = pd.DataFrame(
        {"owned": owned_curve, **options["curve"].to_dict(), "cheapest": best["curve"]}
    ).rename_axis("month")
    drop = ("curve",)
    return {
        "fleet": inv.fleet,
        "summary": inv.summary(),
        "months": months,
        "utilization": utilization,
        "nodes": nodes,
        "units": units,
        "owned": own.__dict__
        | {"upfront_usd": own.upfront_usd, "monthly_usd": own.monthly_usd, "total_usd": total},
        "prices": df.reset_index(),
        "options": options.drop(columns=list(drop)),
        "cheapest": {k: v for k, v in best.items() if k not in drop},
        "on_demand": {k: v for k, v in rows["on-demand"].items() if k not in drop},
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
    u, months, units, own = view["utilization"], view["months"], view["units"], view["owned"]
    served = tco.tokens_made(units, serve_tokens_per_s, u, months)
    trained = tco.tokens_made(units, train_tokens_per_s, u, months)
    totals = {
        "owned": own["total_usd"],
        "cheapest AWS": view["cheapest"]["total_usd"],
        "AWS on-demand": view["on_demand"]["total_usd"],
    }
    table = pd.DataFrame(
        {
            "serve_usd_per_1m": {w: tco.cost_per_million(t, served) for w, t in totals.items()}
            | {a.name: a.per_1m_output(prompt_tokens, output_tokens) for a in api},
            "train_usd_per_1m": {w: tco.cost_per_million(t, trained) for w, t in totals.items()}
            | {a.name: a.training_usd_per_1m for a in api},
        }
    ).rename_axis("who")
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
            "savings_pct": tco.savings_pct(own["total_usd"], bill),
            "break_even_month": own["upfront_usd"] / gap if gap > 0 else None,
            "break_even_utilization": own["total_usd"] / (bill / u) if bill else None,
        },
    }


def sensitivity(
    inv: Inventory,
    site: Site,
    rates: Mapping[str, UnitRate],
    utilization: float,
    months: int,
) -> pd.DataFrame:
    """Savings vs the cheapest AWS option when one input moves, the others as configured.
    Each variant: (what changes, to what, capex factor, site changes, utilization, discount of
    a hypothetical 3-year commitment offered for every type)."""
    staff, u = site.staff_usd_per_node_year, utilization
    variants = [
        ("as configured", "-", 1.0, {}, u, None),
        ("staff per server and year", "$0", 1.0, {"staff_usd_per_node_year": 0}, u, None),
        ("staff per server and year", f"${3 * staff:,.0f} (3x)", 1.0,
         {"staff_usd_per_node_year": 3 * staff}, u, None),
        ("capex", "-20%", 0.8, {}, u, None),
        ("capex", "+20%", 1.2, {}, u, None),
        ("commitment discount", "40% off, 3yr (hypothetical)", 1.0, {}, u, 0.4),
        ("commitment discount", "60% off, 3yr (hypothetical)", 1.0, {}, u, 0.6),
        ("residual value", "20% of capex", 1.0, {"residual_value_pct": 20}, u, None),
        ("residual value", "40% of capex", 1.0, {"residual_value_pct": 40}, u, None),
        ("utilization", "30%", 1.0, {}, 0.3, None),
        ("utilization", "90%", 1.0, {}, 0.9, None),
    ]  # fmt: skip
    rows = []
    for what, to, capex, change, busy, off in variants:
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
            site.model_copy(update=change),
            rates,
            busy,
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
    site: Site,
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
    in_fleet = used_units.reindex(prov.index).fillna(0.0)
    by_type["utilization"] = (in_fleet / prov_units).reindex(by_type.index)
    gpu = bool((prov.index != "CPU").any())
    key = "gpu_hours" if gpu else "cpu_hours"  # GPUs are what costs money when a fleet has them
    capacity = float(prov[key].sum())  # 0 when every node was bought after the period
    util = float(used[key].reindex(prov.index).fillna(0).sum()) / capacity if capacity else 0.0
    cloud = float(sum(h * rates[t].on_demand for t, h in used_units.items()))
    busy = float(in_fleet.sum())
    return {
        "fleet": inv.fleet,
        "period": {
            "since": period.since.isoformat(),
            "until": period.until.isoformat(),
            "hours": period.hours,
        },
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
        # AWS on-demand per GPU- or vCPU-hour of this fleet (weighted by what it has)
        "on_demand_per_unit_hour": sum(h * rates[t].on_demand for t, h in prov_units.items())
        / prov_units.sum(),
        "idle": util < IDLE,
        "savings_pct": None if util < IDLE else tco.savings_pct(owned_usd, cloud),
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
    hourly = mine["total_usd_h"].sum() / mine["units"].sum() * units_per_replica
    tokens = tps * tco.SECONDS_PER_HOUR
    per_1m = {
        "owned, busy every hour": tco.cost_per_million(hourly, tokens),
        f"owned, {utilization:.0%} busy": tco.cost_per_million(hourly, tokens * utilization),
    }
    per_1m |= {
        f"AWS {rate.instance_type} {o} (hours used)": tco.cost_per_million(
            rate.prices[o].hourly_usd * units_per_replica, tokens
        )
        for o in BUSY_PAID
        if o in rate.prices
    }
    return out | {
        "replica_tokens_per_s": tps,
        "replica_units": units_per_replica,
        "accelerator_type": accelerator_type,
        "per_1m": per_1m,
    }


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
        "months": plan,
        "nodes_to_buy": int(plan.nodes.iloc[-1]),
        "instances_last": int(plan.instances.iloc[-1]),
        "crossover_month": cap.crossover_month(plan),
    }
