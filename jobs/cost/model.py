"""The cost of serving the team's demand three ways, as monthly cash flows: owning the fleet
(grown as demand outgrows it), renting it from AWS under each option, or paying the API per
token. One vectorised function of the inputs ``x`` (a value or one array per input, one element
per Monte Carlo sample), so the point estimate, the Monte Carlo run, the tornado and the
break-even search are the same arithmetic::

    flows = evaluate(model, x)           # {"own": (S, L), "API: ...": ..., "RI 3yr ...": ...}
    npv(flows["own"], x["discount_rate_pct"])

Owned: the inventory's nodes from month 0; when the busiest hour needs more than they serve
(at ``headroom``, with ``spares`` replicas of the primary shape held back: N+1), copies of its
primary GPU node are bought and kept. Rented: for each replica shape, the cheapest instance that
holds it (``instances``); each option on the shape that makes it cheapest. The API: the month's
output tokens at the output price plus their prompts at the input price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from jobs.cost import billing, demand, tco
from jobs.cost.instances import Pick
from jobs.cost.prices import term_years

COMMITTED = ("RI", "EC2 Instance SP", "Compute SP")


@dataclass
class Model:
    """Everything fixed while the inputs vary."""

    months: int
    headroom: float
    spares: int
    rates: list[demand.Rate]  # the scenario's replica shapes
    picks: list[Pick | None]  # the instance carrying each shape (None: not rentable)
    primary: int  # the shape owned nodes are added for
    capex: np.ndarray  # inventory nodes
    kw: np.ndarray
    template: int  # the node copied when demand outgrows the inventory
    inventory_replicas: list[int]  # replicas of each shape the inventory holds
    template_replicas: int
    life_years: float
    api_input: float
    api_output: float
    output_tokens: int
    head_usd_h: float  # the cloud fleet's head node, on-demand
    storage_usd_per_gb_month: float
    egress_usd_per_gb: float
    options: list[str] = field(default_factory=list)


def rent_options(picks: list[Pick | None]) -> list[str]:
    """Options some shape's instance is priced under; spot never carries serving."""
    have = {o for p in picks if p for o in p.price.prices}
    return [o for o in dict.fromkeys(o for p in picks if p for o in p.price.prices)
            if o in have and o != "spot"]  # fmt: skip


def _s(x: Mapping[str, object], key: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(x[key], float), (n,)).astype(float)


def size(x: Mapping[str, object]) -> int:
    return max(np.size(v) for v in x.values())


def evaluate(model: Model, x: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Cash flows (samples, months + tail) of owning, of the API, and of every rent option."""
    n, months = size(x), model.months
    v = {k: _s(x, k, n) for k in x}
    mean = demand.load(v["tokens_per_day"], v["growth_pct_per_month"], months)
    tf = v["throughput_factor"]
    train = _training(model, v)  # per month, when it does not fit into idle capacity
    out: dict[str, np.ndarray] = {"own": _own(model, v, mean, tf, train)}
    tokens = mean * 86400 * billing.DAYS_PER_MONTH  # output tokens a month
    blend = model.api_output + v["prompt_tokens"] / model.output_tokens * model.api_input
    out["API"] = billing.hourly(tokens, blend / 1e6)
    extras = billing.hourly(
        np.ones_like(mean),
        model.head_usd_h * billing.HOURS_PER_MONTH
        + v["storage_gb"] * model.storage_usd_per_gb_month,
    ) + billing.hourly(tokens, v["egress_bytes_per_token"] / 1e9 * model.egress_usd_per_gb)
    best: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for rate, pick in zip(model.rates, model.picks, strict=True):
        if pick is None:
            continue
        tps = rate.replica_tokens_per_s * tf
        reps = demand.replicas(mean, v["peak_to_mean"], tps, model.headroom, model.spares)
        inst = np.ceil(reps / pick.replicas_per_instance)
        held_idle = _idle_gpu_hours(
            inst * pick.replicas_per_instance * tps[:, None] - mean, rate, tf
        )
        for option, price in pick.price.prices.items():
            if option not in model.options:
                continue
            flows = _rent(option, price, inst, mean, tps, pick, model, v)
            pays = (
                train
                if option == "on-demand"
                else np.where(held_idle < v["training_gpu_hours_per_month"][:, None], train, 0)
            )
            flows = flows + extras + billing.hourly(pays, np.ones(n))
            flows += billing.support(flows)
            pv = billing.npv(flows, v["discount_rate_pct"])
            if option not in best:
                best[option] = (flows, pv)
            else:
                keep = best[option][1] <= pv
                best[option] = (
                    np.where(keep[:, None], best[option][0], flows),
                    np.minimum(best[option][1], pv),
                )
    out.update({o: f for o, (f, _) in best.items()})
    return out


def _rent(option, price, inst, mean, tps, pick, model, v) -> np.ndarray:
    years = term_years(option)
    if option.startswith(COMMITTED):
        f = v["commitment_price_factor"]
        return billing.commitment(inst, price.hourly_usd * f, price.upfront_usd * f, years)
    if option == "Capacity Block":
        return billing.capacity_blocks(inst, price.hourly_usd * v["capacity_block_price_factor"])
    hours = billing.HOURS_PER_MONTH * (mean / (tps[:, None] * model.headroom) + model.spares)
    return billing.hourly(hours / pick.replicas_per_instance, np.full(len(tps), price.hourly_usd))


def _idle_gpu_hours(idle_tokens_per_s: np.ndarray, rate: demand.Rate, tf: np.ndarray) -> np.ndarray:
    return (
        np.maximum(idle_tokens_per_s, 0)
        / (rate.tokens_per_s * tf[:, None])
        * billing.HOURS_PER_MONTH
    )


def _training(model: Model, v: dict[str, np.ndarray]) -> np.ndarray:
    """The cheapest way to rent the month's training campaign, (samples, months)."""
    pick = model.picks[model.primary]
    n = len(v["training_gpu_hours_per_month"])
    if pick is None:
        return np.zeros((n, model.months))
    p = pick.price.prices
    block = p.get("Capacity Block")
    costs = billing.training_cost(
        v["training_gpu_hours_per_month"], pick.price.gpu.count, p["on-demand"].hourly_usd,
        block.hourly_usd * v["capacity_block_price_factor"] if block else None,
        p["spot"].hourly_usd if "spot" in p else None, v["spot_overhead_pct"],
    )  # fmt: skip
    cheapest = np.min(np.vstack(list(costs.values())), axis=0)
    return np.repeat(cheapest[:, None], model.months, axis=1)


def owned_capacity(
    model: Model, v: Mapping[str, np.ndarray], mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(nodes added each month, tokens/s the owned fleet serves at 100%), both (samples, months)."""
    tf = np.asarray(v["throughput_factor"], float)
    rates = [r.replica_tokens_per_s for r in model.rates]
    have = sum(k * r for k, r in zip(model.inventory_replicas, rates, strict=True)) * tf
    per_node = model.template_replicas * rates[model.primary] * tf
    need = mean * np.asarray(v["peak_to_mean"])[:, None] / model.headroom
    need += model.spares * rates[model.primary] * tf[:, None]
    short = np.maximum(need - have[:, None], 0)
    added = np.maximum.accumulate(np.ceil(short / per_node[:, None] - 1e-9), axis=1)
    return added, have[:, None] + added * per_node[:, None]


def _own(
    model: Model, v: dict[str, np.ndarray], mean: np.ndarray, tf: np.ndarray, train: np.ndarray
) -> np.ndarray:
    added, capacity = owned_capacity(model, v, mean)
    flows = tco.owned_flows(model.capex, model.kw, added, model.template, v, model.life_years)
    idle = _idle_gpu_hours(capacity - mean, model.rates[model.primary], tf)
    pays = np.where(idle < v["training_gpu_hours_per_month"][:, None], train, 0)
    return flows + billing.hourly(pays, np.ones(len(tf)))
