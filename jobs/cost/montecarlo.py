"""Ranges instead of one number: Monte Carlo over every assumed input, the tornado of what flips
the verdict, and the break-even volume (numpy, a fixed seed: the same seed gives the same run).

Each input is drawn from a triangular distribution between its range's ends with its configured
value as the mode; an input whose range is one point stays at it, so with every range collapsed
each sample equals the point estimate. For each sample the present value of owning, of the API
and of every rent option is computed (``model.evaluate``); the report gives P10/P50/P90 of the
savings of owning against each and the share of samples in which owning is the cheapest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from jobs.cost import billing, demand
from jobs.cost.model import Model, evaluate, owned_capacity

OWN, API = "own", "API"


def sample(
    point: Mapping[str, float], ranges: Mapping[str, tuple[float, float]], n: int, seed: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(point):  # a fixed order: the same seed draws the same numbers
        lo, hi = ranges.get(key, (point[key], point[key]))
        out[key] = (
            np.full(n, float(point[key])) if lo == hi else rng.triangular(lo, point[key], hi, n)
        )
    return out


def present_values(model: Model, x: Mapping[str, Any]) -> pd.DataFrame:
    """Present value of each way, one row per sample."""
    flows = evaluate(model, x)
    rate = np.broadcast_to(np.asarray(x["discount_rate_pct"], float), (len(flows[OWN]),))
    return pd.DataFrame({k: billing.npv(f, rate) for k, f in flows.items()})


def decide(pv: pd.DataFrame) -> pd.Series:
    """The cheapest way per sample: own, API or the rent option."""
    return pv.idxmin(axis=1)


def savings(pv: pd.DataFrame) -> pd.DataFrame:
    """Savings of owning against each other way (%), and against the cheapest other way."""
    others = pv.drop(columns=OWN)
    out = (1 - pv[[OWN]].to_numpy() / others) * 100
    out["cheapest alternative"] = (1 - pv[OWN] / others.min(axis=1)) * 100
    return out


def summarize(pv: pd.DataFrame) -> dict[str, Any]:
    s = savings(pv)
    q = s.quantile([0.1, 0.5, 0.9]).T.set_axis(["p10", "p50", "p90"], axis=1)
    wins = decide(pv).value_counts(normalize=True)
    return {
        "savings": q,
        "p_own_wins": float(wins.get(OWN, 0.0)),
        "wins": wins.to_dict(),
        "pv": pv.quantile([0.1, 0.5, 0.9]).T.set_axis(["p10", "p50", "p90"], axis=1),
        "samples": len(pv),
    }


def tornado(
    model: Model, point: Mapping[str, float], ranges: Mapping[str, tuple[float, float]]
) -> pd.DataFrame:
    """Savings of owning against the cheapest other way with one input at each end of its
    range, the rest at their values; ``flips``: the decision changes there."""
    keys = [k for k in sorted(ranges) if ranges[k][0] != ranges[k][1]]
    rows = [(k, end, ranges[k][i]) for k in keys for i, end in enumerate(("low", "high"))]
    x = {k: np.array([point[k]] + [v if key == k else point[k] for key, _, v in rows])
         for k in point}  # fmt: skip
    pv = present_values(model, x)
    s = savings(pv)["cheapest alternative"].to_numpy()
    d = decide(pv).to_numpy()
    df = pd.DataFrame(rows, columns=["input", "end", "value"])
    df["savings_pct"], df["decision"] = s[1:], d[1:]
    df["flips"] = df["decision"] != d[0]
    wide = df.pivot(index="input", columns="end", values=["value", "savings_pct", "decision"])
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    wide["flips"] = df.groupby("input")["flips"].any()
    wide["swing"] = (wide.savings_pct_high - wide.savings_pct_low).abs()
    return wide.sort_values("swing", ascending=False).reset_index().assign(base=s[0])


def break_even(model: Model, point: Mapping[str, float], against: str) -> dict[str, Any] | None:
    """The daily volume (output tokens, today) above which owning costs no more than
    ``against`` (API or the cheapest rent option), and the owned fleet's utilisation there."""

    def gap(scale: np.ndarray) -> tuple[np.ndarray, pd.DataFrame, dict[str, np.ndarray]]:
        x = {k: np.full(len(scale), v, float) for k, v in point.items()}
        x["tokens_per_day"] = point["tokens_per_day"] * scale
        pv = present_values(model, x)
        other = pv[API] if against == API else pv.drop(columns=[OWN, API]).min(axis=1)
        return (pv[OWN] - other).to_numpy(), pv, x

    scale = np.geomspace(1e-3, 1e3, 121)
    for _ in range(2):  # a coarse grid, then a fine one around the first crossing
        g, _, _ = gap(scale)
        wins = np.flatnonzero(g <= 0)
        if not len(wins):
            return None
        i = wins[0]
        if i == 0:
            return {"tokens_per_day": float(point["tokens_per_day"] * scale[0]), "below_grid": True,
                    "utilization": None}  # fmt: skip
        scale = np.geomspace(scale[i - 1], scale[i], 41)
    k = scale[np.flatnonzero(gap(scale)[0] <= 0)[0]]
    x = {key: np.atleast_1d(np.asarray(v, float)) for key, v in point.items()}
    x["tokens_per_day"] = x["tokens_per_day"] * k
    mean = demand.load(x["tokens_per_day"], x["growth_pct_per_month"], model.months)
    _, capacity = owned_capacity(model, x, mean)
    return {
        "tokens_per_day": float(point["tokens_per_day"] * k),
        "below_grid": False,
        "utilization": float((mean / capacity).mean()),
    }
