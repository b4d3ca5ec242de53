"""The report's PNG charts (matplotlib, Agg), drawn from the result frames.

names = draw_all(result, folder)   # ["decision.png", "tornado.png", ...]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jobs.cost.montecarlo import API, OWN

OWNED, CLOUD, APIC = "tab:blue", "tab:orange", "tab:gray"  # owned, rented, the API
WORSE, BETTER, GREY = "tab:red", "tab:green", "#999999"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def money(x: float, _pos: Any = None) -> str:
    """Axis ticks: ``1_250_000`` -> ``$1.25M``."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"${x / scale:.4g}{suffix}"
    return f"${x:.4g}"


def _save(fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)


def _color(way: str) -> str:
    return {OWN: OWNED, API: APIC}.get(way, CLOUD)


def decision(result: dict[str, Any], path: Path) -> None:
    """Present value of each family's cheapest way, with its P10-P90 range."""
    h, pv = result["headline"], result["montecarlo"]["pv"]
    t = h["ways"]["pv_usd"].astype(float)
    fam = (
        t.drop(index=[OWN, API]).groupby(lambda w: w.rsplit(" ", 2)[0] if "yr" in w else w).idxmin()
    )
    ways = sorted({OWN, API, *fam}, key=lambda w: t[w])
    fig, ax = _plt().subplots(figsize=(10, 0.5 * len(ways) + 1.6))
    y = np.arange(len(ways))
    ax.barh(y, [t[w] for w in ways], color=[_color(w) for w in ways], alpha=0.85)
    lo = [t[w] - pv.loc[w, "p10"] for w in ways]
    hi = [pv.loc[w, "p90"] - t[w] for w in ways]
    ax.errorbar([t[w] for w in ways], y, xerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="none",
                ecolor="black", capsize=4, lw=1)  # fmt: skip
    labels = [{OWN: "own the fleet", API: "API"}.get(w, f"AWS {w}") for w in ways]
    ax.set_yticks(y, labels)
    for i, w in enumerate(ways):
        ax.annotate(money(t[w]), (pv.loc[w, "p90"], i), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8)  # fmt: skip
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(money)
    ax.set_xlim(0, float(pv.loc[ways, "p90"].max()) * 1.18)
    title = (f"Present value of serving the demand for {h['months']} months\n(bar: as configured;"
             " whisker: P10-P90 of the Monte Carlo run)")  # fmt: skip
    _save(fig, ax, path, title, "present value (USD)", "")


def tornado(result: dict[str, Any], path: Path) -> None:
    t = result["tornado"].head(12).iloc[::-1]
    base = float(t["base"].iloc[0])
    fig, ax = _plt().subplots(figsize=(10, 0.42 * len(t) + 1.8))
    y = np.arange(len(t))
    for col, color in (("savings_pct_low", "#9ecae1"), ("savings_pct_high", "#3182bd")):
        ax.barh(y, t[col] - base, left=base, color=color, label=col.split("_")[-1] + " end")
    ax.axvline(base, color="black", lw=1)
    ax.axvline(
        0, color=WORSE, lw=1.2, ls="--", label="verdict flips (owning = the cheapest other way)"
    )
    names = [f"{n} *" if f else n for n, f in zip(t["input"], t["flips"], strict=True)]
    ax.set_yticks(y, names)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    title = (
        f"What moves the answer: savings of owning vs the cheapest other way (as configured "
        f"{base:+.0f}%),\neach input at the ends of its range; * flips the verdict"
    )
    _save(fig, ax, path, title, "owning saves (%)", "")


def cumulative(result: dict[str, Any], path: Path) -> None:
    h = result["headline"]
    df = h["cumulative"]
    fig, ax = _plt().subplots(figsize=(10, 4.5))
    for way in df.columns:
        label = {OWN: "own the fleet", API: "API"}.get(way, f"AWS {way}")
        df[way].plot(ax=ax, label=label, color=_color(way), lw=3 if way == OWN else 1.6,
                     ls="-" if way in (OWN, API, h["best_rent"]) else ":")  # fmt: skip
    ax.yaxis.set_major_formatter(money)
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, ax, path, f"Cumulative cash out, fleet {h['fleet']}\n(in the last month: resale "
          "credited; what commitments owe past the horizon added)", "month", "USD")  # fmt: skip


def plan(result: dict[str, Any], path: Path) -> None:
    p = result["headline"]["plan"].set_index("month")
    fig, ax = _plt().subplots(figsize=(10, 4))
    p["tokens_per_s"].plot(ax=ax, label="demand, day's mean", color=GREY)
    p["peak_tokens_per_s"].plot(ax=ax, label="demand, busiest hour", color="black")
    p["owned_capacity"].plot(ax=ax, label="owned fleet (servers added when short)", color=OWNED,
                             drawstyle="steps-post", lw=2)  # fmt: skip
    p["inventory_capacity"].plot(ax=ax, label="the inventory alone", color=OWNED, ls="--", lw=1)
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, ax, path, "Demand vs what the owned fleet serves\n(servers are added for the "
          "busiest hour at the headroom, plus the spare)", "month", "output tokens/s")  # fmt: skip


def workloads(result: dict[str, Any], path: Path) -> None:
    m = result["measured"]
    key, unit = ("gpu_hours", "GPU-hours") if m["unit"] == "GPU" else ("cpu_hours", "CPU-hours")
    df = m["by_kind"].pivot_table(index="kind", columns="status", values=key, aggfunc="sum")
    fig, ax = _plt().subplots(figsize=(10, 3.8))
    outcome = {"FAILED": WORSE, "STOPPED": "tab:orange", "SUCCEEDED": BETTER}
    df.plot.bar(ax=ax, stacked=True, rot=0, color=[outcome.get(c, GREY) for c in df.columns])
    ax.legend(fontsize=8, title="outcome")
    title = (
        f"{unit} held on fleet {m['fleet']} by each kind of workload ({result['ledger']['period']})"
    )
    _save(fig, ax, path, title, "workload kind", unit)


CHARTS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "decision.png": decision,
    "tornado.png": tornado,
    "cumulative.png": cumulative,
    "plan.png": plan,
    "workloads.png": workloads,
}


def draw_all(result: dict[str, Any], folder: Path) -> list[str]:
    """Draw every chart that has data; returns the file names written."""
    skip = {"workloads.png": result["measured"]["by_kind"].empty}
    names = [name for name in CHARTS if not skip.get(name)]
    for name in names:
        CHARTS[name](result, folder / name)
    return names
