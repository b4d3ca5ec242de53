"""Every number of the report, from the checked inputs (pure): the decision and its range, each
fleet's plan and options, the Monte Carlo run, the tornado, break-even, the measured view.

    result = analyze(preflight(cfg))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cluster.inventory import CPU_TYPE, Inventory, Site
from jobs.cost import billing, demand, montecarlo, tco
from jobs.cost.model import Model, evaluate, owned_capacity, rent_options
from jobs.cost.montecarlo import API, OWN
from jobs.cost.prices import FAMILIES, family
from jobs.cost.run import Inputs
from jobs.cost.usage import HOURS, Period, node_hours_in, provisioned, unit_hours, usage_frame

IDLE = 0.10  # below this measured utilization a savings percentage says nothing useful


def build(inp: Inputs, name: str, picks: list | None = None) -> tuple[Model, dict[str, float]]:
    """The model of one fleet's scenario and its inputs at their configured values."""
    cfg, inv = inp.cfg, inp.fleets[name]
    sc, w = cfg.scenario(name), cfg.workload
    rates, picks = inp.rates[name], inp.picks[name] if picks is None else picks
    shapes = list(sc.replicas.items())
    primary_gpu = shapes[0][0]
    template = next(i for i, n in enumerate(inv.nodes) if n.accelerator_type == primary_gpu)
    per_node = {gpu: 0 for gpu, _ in shapes}
    for n in inv.nodes:
        if n.accelerator_type in sc.replicas:
            per_node[n.accelerator_type] += n.gpu_count // sc.replicas[n.accelerator_type].gpus
    cpu_type, cpu_usd_h = inp.unit_rates.get(CPU_TYPE) or ("", 0.0)
    api = cfg.api[0]
    model = Model(
        months=cfg.horizon_months, headroom=w.headroom, spares=w.spares, rates=rates,
        picks=picks, primary=0, capex=np.array([n.purchase_usd for n in inv.nodes], float),
        kw=np.array([n.power_w / 1000 for n in inv.nodes], float), template=template,
        inventory_replicas=[per_node[g] for g, _ in shapes],
        template_replicas=inv.nodes[template].gpu_count // shapes[0][1].gpus,
        life_years=inv.site.amortization_years, api_input=api.input_usd_per_1m,
        api_output=api.output_usd_per_1m, output_tokens=w.output_tokens,
        head_usd_h=cpu_usd_h * inv.head.cpus if cpu_type else 0.0,
        storage_usd_per_gb_month=cfg.cloud.storage_usd_per_gb_month,
        egress_usd_per_gb=cfg.cloud.egress_usd_per_gb,
    )  # fmt: skip
    model.options = rent_options(picks)
    return model, cfg.point(inv.site, inp.training_gpu_hours)


def _row(flows: np.ndarray, months: int, rate: float) -> dict[str, float]:
    f = flows[0]
    return {
        "pv_usd": float(billing.npv(flows, np.array([rate]))[0]),
        "total_usd": float(f.sum()),
        "upfront_usd": float(f[0]),
        "after_horizon_usd": float(f[months + 1 :].sum()),
    }


def scenario_view(inp: Inputs, name: str) -> dict[str, Any]:
    """One fleet at its configured inputs: every way, its plan, and the instance choice."""
    model, point = build(inp, name)
    months, rate = model.months, point["discount_rate_pct"]
    flows = evaluate(model, point)
    rows = {k: _row(f, months, rate) for k, f in flows.items()}
    shapes = []  # each shape alone: which instance, and what every option costs on it
    for i, pick in enumerate(model.picks):
        if pick is None:
            continue
        alone = [p if j == i else None for j, p in enumerate(model.picks)]
        one = evaluate(dataclasses.replace(model, picks=alone, options=rent_options(alone)), point)
        costs = {o: _row(f, months, rate)["pv_usd"] for o, f in one.items() if o not in (OWN, API)}
        shapes.append({"rate": dataclasses.asdict(model.rates[i]), "instance": pick.instance_type,
                       "replicas_per_instance": pick.replicas_per_instance, "why": pick.why,
                       "on_demand_usd_h": pick.on_demand, "pv": costs, "prices": {
                           o: pr.model_dump() for o, pr in pick.price.prices.items()}})  # fmt: skip
    for o in model.options:
        rows[o]["instance"] = min(shapes, key=lambda s: s["pv"].get(o, np.inf))["instance"]
    table = pd.DataFrame(rows).T.rename_axis("way")
    table["savings_pct"] = (1 - table.loc[OWN, "pv_usd"] / table["pv_usd"]) * 100
    rent = table.drop(index=[OWN, API])
    best = rent["pv_usd"].astype(float).idxmin() if len(rent) else None
    return {
        "fleet": name, "summary": inp.fleets[name].summary(),
        "model_name": inp.cfg.scenario(name).model,
        "ways": table, "best_rent": best, "shapes": shapes, "months": months,
        "decision": table["pv_usd"].astype(float).idxmin(),
        "plan": _plan(model, point, inp.fleets[name]), "point": point,
        "cumulative": pd.DataFrame({k: np.cumsum(np.append(f[0][:months], f[0][months:].sum()))
                                    for k, f in flows.items() if k in (OWN, API, best, "on-demand")}
                                   ).rename_axis("month"),
        "per_1m": _per_1m(table, model, point, inp, best),
        "nodes": _nodes(inp.fleets[name], inp.fleets[name].site, point["failure_pct_per_year"]),
    }  # fmt: skip


def _nodes(inv: Inventory, site: Site, failure_pct: float) -> pd.DataFrame:
    rows = [(n.name, n.accelerator_type, n.gpu_count or n.cpus, n.purchase_usd, n.power_w)
            for n in inv.nodes]  # fmt: skip
    return tco.node_costs(rows, site, failure_pct)


def _plan(model: Model, point: Mapping[str, float], inv: Inventory) -> pd.DataFrame:
    x = {k: np.atleast_1d(float(v)) for k, v in point.items()}
    mean = demand.load(x["tokens_per_day"], x["growth_pct_per_month"], model.months)
    added, capacity = owned_capacity(model, x, mean)
    df = pd.DataFrame({"month": np.arange(model.months), "tokens_per_s": mean[0],
                       "peak_tokens_per_s": mean[0] * point["peak_to_mean"],
                       "nodes_added": added[0], "owned_capacity": capacity[0],
                       "owned_utilization": mean[0] / capacity[0]})  # fmt: skip
    per_node = model.template_replicas * model.rates[model.primary].replica_tokens_per_s
    df["inventory_capacity"] = (
        df.owned_capacity - df.nodes_added * per_node * point["throughput_factor"]
    )
    for rate, pick in zip(model.rates, model.picks, strict=True):
        tps = np.array([rate.replica_tokens_per_s * point["throughput_factor"]])
        reps = demand.replicas(mean, x["peak_to_mean"], tps, model.headroom, model.spares)[0]
        df[f"replicas_{rate.gpu}"] = reps
        if pick is not None:
            df[f"{pick.instance_type}_instances"] = np.ceil(reps / pick.replicas_per_instance)
    return df


def _per_1m(table: pd.DataFrame, model: Model, point: Mapping[str, float], inp: Inputs,
            best: str | None) -> dict[str, float]:  # fmt: skip
    x = {k: np.atleast_1d(float(v)) for k, v in point.items()}
    mean = demand.load(x["tokens_per_day"], x["growth_pct_per_month"], model.months)
    tokens = float(mean.sum() * 86400 * billing.DAYS_PER_MONTH)
    out = {"owned": table.loc[OWN, "total_usd"] / tokens * 1e6}
    if best:
        out["cheapest AWS"] = table.loc[best, "total_usd"] / tokens * 1e6
    if "on-demand" in table.index:
        out["AWS on-demand"] = table.loc["on-demand", "total_usd"] / tokens * 1e6
    w = inp.cfg.workload
    return out | {a.name: a.per_1m_output(w.prompt_tokens, w.output_tokens) for a in inp.cfg.api}


def verdict(view: dict[str, Any], mc: dict[str, Any], api: str) -> dict[str, str]:
    """The decision in two sentences, in English and Spanish."""
    t, d = view["ways"], view["decision"]
    alt = t.drop(index=OWN)["pv_usd"].astype(float).idxmin()
    point = float(t.loc[alt, "savings_pct"])
    s, p, n = mc["savings"].loc["cheapest alternative"], mc["p_own_wins"], f"{mc['samples']:,}"
    name = {API: (f"the API ({api})", f"la API ({api})")}.get(
        alt, (f"AWS {alt} on {t.loc[alt, 'instance']}", f"AWS {alt} en {t.loc[alt, 'instance']}")
    )
    do = {
        OWN: ("own the fleet", "comprar la flota"),
        API: (f"keep paying the API ({api})", f"seguir pagando la API ({api})"),
    }.get(d, (f"rent {name[0]}", f"alquilar {name[1]}"))
    rng = (
        f"P50 {s.p50:+.0f}%, P10 {s.p10:+.0f}% to P90 {s.p90:+.0f}%",
        f"P50 {s.p50:+.0f}%, de P10 {s.p10:+.0f}% a P90 {s.p90:+.0f}%",
    )
    if d == OWN:
        head = (
            f"Owning saves {point:.0f}% against the cheapest other way, {name[0]}",
            f"Comprar ahorra un {point:.0f}% frente a la alternativa más barata, {name[1]}",
        )
    else:
        head = (
            f"Owning would cost {-point:.0f}% more than {name[0]}",
            f"Comprar costaría un {-point:.0f}% más que {name[1]}",
        )
    return {
        "en": f"For the team's volume: {do[0]}. {head[0]}, as configured (present value over "
        f"{view['months']} months); over the input ranges owning saves {rng[0]}, and owning is "
        f"the cheapest way in {p:.0%} of {n} simulated futures.",
        "es": f"Para el volumen del equipo: {do[1]}. {head[1]}, con los valores configurados "
        f"(valor actual a {view['months']} meses); con los rangos de las entradas comprar ahorra "
        f"{rng[1]}, y comprar es lo más barato en el {p:.0%} de {n} futuros simulados.",
    }  # fmt: skip


def measured_view(
    inv: Inventory,
    site: Site,
    on_demand: Mapping[str, float],
    rows: list[dict[str, Any]],
    period: Period,
    failure_pct: float = 0.0,
) -> dict[str, Any]:
    """The ledger's period: used vs provisioned, what the fleet cost busy or idle, and what the
    same busy hours would have cost on AWS on-demand (``on_demand``: USD per GPU- or vCPU-hour)."""
    nodes = _nodes(inv, site, failure_pct)
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
    gpu = bool((prov.index != CPU_TYPE).any())
    key = "gpu_hours" if gpu else "cpu_hours"
    capacity = float(prov[key].sum())
    util = float(used[key].reindex(prov.index).fillna(0).sum()) / capacity if capacity else 0.0
    od = on_demand
    cloud = float(sum(h * od[t] for t, h in used_units.items()))
    busy = float(in_fleet.sum())
    return {
        "fleet": inv.fleet, "period": {"hours": period.hours}, "nodes": nodes,
        "by_type": by_type.reset_index(),
        "by_kind": usage.groupby(["kind", "accelerator_type", "status"])[HOURS].sum().reset_index(),
        "utilization": util, "unit": "GPU" if gpu else "CPU", "busy_unit_hours": busy,
        "provisioned_unit_hours": float(prov_units.sum()), "owned_usd": owned_usd,
        "owned_per_busy_unit_hour": owned_usd / busy if busy else None,
        "cloud_on_demand_usd": cloud,
        "on_demand_per_unit_hour": sum(h * od[t] for t, h in prov_units.items()) / prov_units.sum(),
        "idle": util < IDLE,
        "savings_pct": None if util < IDLE else (1 - owned_usd / cloud) * 100 if cloud else None,
        "not_in_fleet": sorted(set(used.index) - set(prov.index)),
    }  # fmt: skip


def _missing(inp: Inputs) -> list[dict[str, Any]]:
    """Per family, the chosen instances it has no price for (and what fills it)."""
    chosen = {p.instance_type: p for ps in inp.picks.values() for p in ps if p}
    out = []
    for fam, text in FAMILIES.items():
        lacking = [
            t for t, p in chosen.items() if not any(family(o) == fam for o in p.price.prices)
        ]
        if lacking:
            out.append({"family": text, "types": lacking, "fill": f"{inp.command} pricing=live"})
    return out


def analyze(inp: Inputs) -> dict[str, Any]:
    """Every number of the report: plain values and pandas frames (see report.summary)."""
    cfg = inp.cfg
    views = [scenario_view(inp, name) for name in inp.fleets if cfg.scenario(name)]
    head = views[0]
    model, point = build(inp, cfg.fleet)
    ranges = {k: tuple(v) for k, v in cfg.ranges.items()}
    mc_cfg = cfg.monte_carlo
    x = montecarlo.sample(point, ranges, mc_cfg.samples, mc_cfg.seed)
    mc = montecarlo.summarize(montecarlo.present_values(model, x)) | {"seed": mc_cfg.seed}
    notes = list(inp.notes) + [
        f"{r.gpu} x{r.gpus_per_replica}: {r.how}" for r in inp.rates[cfg.fleet]
    ]
    plan = head["plan"]
    if plan["nodes_added"].iloc[0] > 0 or plan["nodes_added"].iloc[-1] > 0:
        first = int(plan.index[plan["nodes_added"] > 0][0])
        notes.insert(0, f"WARNING: the inventory of fleet {cfg.fleet} cannot carry the demand "
                     f"from month {first} (N+1, {cfg.workload.headroom:.0%} headroom): "
                     f"{int(plan['nodes_added'].iloc[-1])} more "
                     f"{inp.fleets[cfg.fleet].nodes[model.template].accelerator_type} servers by "
                     f"month {cfg.horizon_months}; the owned cost includes them")  # fmt: skip
    od = {t: r for t, (_, r) in inp.unit_rates.items()}
    estimates = sorted({f"{p.instance_type} {o}" for ps in inp.picks.values() for p in ps if p
                        for o, pr in p.price.prices.items() if pr.estimate})  # fmt: skip
    book = inp.book.model_dump(include={"source", "as_of", "path", "fallback", "sources", "notes"})
    return {
        "created_at": inp.now.isoformat(timespec="seconds"),
        "name": cfg.name or inp.now.strftime("%Y-%m-%d"),
        "region": cfg.region, "command": inp.command,
        "prices": book | {"label": inp.book.label(), "missing": _missing(inp),
                          "estimates": estimates},
        "headline": head, "scenarios": views, "montecarlo": mc,
        "tornado": montecarlo.tornado(model, point, ranges),
        "break_even": {k: montecarlo.break_even(model, point, k) for k in (API, "rent")},
        "verdict": verdict(head, mc, cfg.api[0].name),
        "training": {"gpu_hours_per_month": inp.training_gpu_hours, "source": inp.training_source},
        "measured": measured_view(inp.measured, inp.measured_site, od, inp.rows, inp.period,
                                  cfg.finance.failure_pct_per_year),
        "bench": dataclasses.asdict(inp.bench) | {"path": str(inp.bench.path)}
        if inp.bench else None,
        "ledger": {"url": inp.ledger_url, "period": inp.period.label()},
        "inputs": {
            "site": inp.fleets[cfg.fleet].site.model_dump(mode="json"),
            "measured_site": dict(cfg.measured_site), "point": point, "ranges": ranges,
            "nodes": {f.fleet: [n.model_dump(mode="json") for n in f.nodes]
                      for f in [*inp.fleets.values(), inp.measured]},
            "config": cfg.model_dump(mode="json"),
        },
        "notes": notes,
    }  # fmt: skip
