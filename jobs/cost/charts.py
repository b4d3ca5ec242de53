"""The report's PNG charts, drawn with pandas' plotting (matplotlib, Agg) from the result frames.

names = draw_all(result, folder)   # ["cumulative.png", "savings_vs_utilization.png", ...]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from jobs.cost.prices import OPTIONS, PAYMENTS, family, term_years
from jobs.cost.tables import usd

OWNED, CHEAPEST, WORSE, BETTER = "#1f77b4", "#000000", "#d62728", "#2ca02c"
# one colour per family of options (the owned fleet is blue); within a family the payment
# option sets the line style and the term the marker
FAMILY_COLOR = {
    "on-demand": "#d62728",
    "spot": "#ff7f0e",
    "Capacity Block": "#2ca02c",
    "RI": "#9467bd",
    "EC2 Instance SP": "#8c564b",
    "Compute SP": "#e377c2",
}
PAYMENT_STYLE = dict(zip(PAYMENTS, ("-", "--", ":"), strict=True))


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def money(x: float, _pos: Any = None) -> str:
    """Axis ticks: ``1_250_000`` -> ``$1.25M`` (significant digits kept, so a tick never reads
    as its neighbour: $1.25M is not "$1.2M")."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"${x / scale:.4g}{suffix}"
    return f"${x:.4g}"


def _style(option: str) -> dict[str, Any]:
    if option not in OPTIONS:  # the cheapest mix, or a hypothetical price
        return {"color": CHEAPEST, "ls": "-.", "lw": 2}
    payment = next((p for p in PAYMENTS if option.endswith(p)), "No Upfront")
    years = term_years(option)
    marker = {1: "o", 3: "s"}.get(years) if years else None
    return {
        "color": FAMILY_COLOR[family(option)],
        "ls": PAYMENT_STYLE[payment],
        "lw": 1.6,
        "marker": marker,
        "ms": 3,
    }


def _lines(ax: Any, df: pd.DataFrame, names: list[str], prefix: str) -> None:
    for name in names:
        label = "cheapest mix of options" if name == "cheapest" else name
        df[name].plot(ax=ax, label=f"{prefix}{label}", **_style(name))


def _save(fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)


def _with_mix(view: dict[str, Any], names: list[str]) -> list[str]:
    """The cheapest line only when it mixes several options (else it is one of ``names``)."""
    return names + (["cheapest"] if view["cheapest"]["same_as"] is None else [])


def cumulative(result: dict[str, Any], path: Path) -> None:
    p = result["planned"]
    df, totals = p["cumulative"], p["options"]["total_usd"]
    best = totals.groupby(totals.index.map(family), sort=False).idxmin()
    fig, ax = _plt().subplots(figsize=(10, 5))
    df["owned"].plot(ax=ax, color=OWNED, lw=3, label=f"owned: fleet {p['fleet']}")
    _lines(ax, df, _with_mix(p, list(dict.fromkeys(["on-demand", *best]))), "AWS ")
    be = p["cheapest"]["break_even_month"]
    if be is not None and be <= p["months"]:
        ax.axvline(be, color=CHEAPEST, ls="--", lw=1)
        ax.annotate(
            f"break-even vs the cheapest AWS option: month {be:.1f}",
            (be, 0),
            xytext=(-6, 6),
            textcoords="offset points",
            ha="right",
            fontsize=9,
        )
    ax.yaxis.set_major_formatter(money)
    ax.legend(fontsize=8, loc="upper left")
    title = (
        f"Cumulative cost of fleet {p['fleet']} at {p['utilization']:.0%} utilization: "
        "owned vs on-demand and the cheapest option of each AWS family"
    )
    _save(fig, ax, path, title, "month", "cumulative cost (USD)")


def savings_curve(result: dict[str, Any], path: Path) -> None:
    p = result["planned"]
    df = p["savings_curve"].set_axis(p["savings_curve"].index * 100)
    names = _with_mix(p, list(p["options"].index))
    fig, ax = _plt().subplots(figsize=(12 if len(names) > 6 else 10, 5))
    _lines(ax, df, names, "vs AWS ")
    ax.axhline(0, color="black", lw=1)
    ax.axvline(p["utilization"] * 100, color=OWNED, ls="--", lw=1, label="planned utilization")
    be = p["cheapest"]["break_even_utilization"]
    if be is not None and be <= 1:
        ax.axvline(
            be * 100, color=CHEAPEST, ls=":", lw=1.2, label=f"break-even vs the cheapest ({be:.0%})"
        )
    low = float(df[names].min().min())
    ax.set_ylim(max(-100, low - 5), min(100, float(df[names].max().max()) + 10))
    outside = len(names) > 6  # a long legend goes beside the plot, not over it
    ax.legend(
        fontsize=7 if outside else 8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1) if outside else None,
    )
    clipped = " (below -100% not drawn)" if low < -100 else ""
    title = (
        f"Savings of owning fleet {p['fleet']} vs each AWS option over {p['months']} "
        f"months, by utilization{clipped}"
    )
    _save(fig, ax, path, title, "utilization of the fleet (% of hours busy)", "owning saves (%)")


def _barh(ax: Any, values: pd.Series, colors: list[str], text: Callable[[float], str]) -> None:
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), values.index)
    for i, v in enumerate(values):
        ax.annotate(
            text(v), (v, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8
        )
    ax.set_xlim(0, float(values.max()) * 1.2)
    ax.invert_yaxis()


def options(result: dict[str, Any], path: Path) -> None:
    p = result["planned"]
    totals = pd.concat(
        [
            pd.Series({f"owned: fleet {p['fleet']}": p["owned"]["total_usd"]}),
            p["options"]["total_usd"].rename(lambda o: f"AWS {o}"),
        ]
    ).sort_values()
    fig, ax = _plt().subplots(figsize=(10, 0.35 * len(totals) + 1.5))
    colors = [OWNED if n.startswith("owned") else FAMILY_COLOR[family(n[4:])] for n in totals.index]
    _barh(ax, totals, colors, usd)
    ax.xaxis.set_major_formatter(money)
    title = (
        f"Total cost over {p['months']} months of fleet {p['fleet']} at "
        f"{p['utilization']:.0%} utilization: owned vs each AWS option priced"
    )
    _save(fig, ax, path, title, "total (USD)", "")


def per_token(result: dict[str, Any], path: Path) -> None:
    planned = [s for s in result["scenarios"] if s["tokens"] is not None]
    fleets = {
        "owned": OWNED,
        "cheapest AWS": FAMILY_COLOR["Capacity Block"],
        "AWS on-demand": WORSE,
    }
    rows = [
        (
            f"{who}: fleet {s['view']['fleet']}",
            s["tokens"]["table"].loc[who, "serve_usd_per_1m"],
            color,
        )
        for s in planned
        for who, color in fleets.items()
    ]
    apis = planned[0]["tokens"]["table"]["serve_usd_per_1m"].drop(list(fleets))
    rows += [(f"API: {name}", v, "#7f7f7f") for name, v in apis.items()]
    values = pd.Series({label: v for label, v, _ in rows})
    fig, ax = _plt().subplots(figsize=(10, 0.4 * len(values) + 1.5))
    _barh(ax, values, [color for *_, color in rows], lambda v: f"${v:.2f}")
    title = "USD per 1M output tokens at the planned throughput: fleets owned and rented vs APIs"
    _save(fig, ax, path, title, "USD per 1M output tokens (API: with the prompts)", "")


def sensitivity(result: dict[str, Any], path: Path) -> None:
    s = result["sensitivity"]
    base = float(s["savings_vs_cheapest_pct"].iloc[0])
    values = s["savings_vs_cheapest_pct"].set_axis(s["what changes"] + ": " + s["to"]).iloc[1:]
    fig, ax = _plt().subplots(figsize=(10, 0.45 * len(values) + 1.5))
    ax.barh(
        range(len(values)),
        values - base,
        left=base,
        color=[BETTER if v >= base else WORSE for v in values],
    )
    ax.set_yticks(range(len(values)), values.index)
    for i, v in enumerate(values):
        right = v >= base
        ax.annotate(
            f"{v:.1f}%",
            (v, i),
            xytext=(4 if right else -4, 0),
            va="center",
            textcoords="offset points",
            ha="left" if right else "right",
            fontsize=8,
        )
    ax.axvline(base, color=CHEAPEST, lw=1, label=f"as configured: {base:.1f}%")
    ax.axvline(0, color="gray", lw=0.8)
    lo, hi = min(values.min(), base, 0), max(values.max(), base, 0)
    ax.set_xlim(lo - 0.12 * (hi - lo), hi + 0.12 * (hi - lo))
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    title = f"What moves the answer for fleet {result['planned']['fleet']}, one input at a time"
    _save(fig, ax, path, title, "owning saves vs the cheapest AWS option (%)", "")


def workloads(result: dict[str, Any], path: Path) -> None:
    m = result["measured"]
    key, unit = ("gpu_hours", "GPU-hours") if m["unit"] == "GPU" else ("cpu_hours", "CPU-hours")
    df = m["by_kind"].pivot_table(index="kind", columns="status", values=key, aggfunc="sum")
    fig, ax = _plt().subplots(figsize=(10, 3.8))
    outcome = {"FAILED": WORSE, "STOPPED": "#ff7f0e", "SUCCEEDED": BETTER}
    df.plot.bar(ax=ax, stacked=True, rot=0, color=[outcome.get(c, "#7f7f7f") for c in df.columns])
    ax.legend(fontsize=8, title="outcome")
    title = (
        f"{unit} held on fleet {m['fleet']} by each kind of workload, by outcome "
        f"({result['ledger']['period']})"
    )
    _save(fig, ax, path, title, "workload kind", unit)


def capacity_plan(result: dict[str, Any], path: Path) -> None:
    c = result["capacity"]
    m, itype = c["months"].set_index("month"), c["shape"]["instance_type"]
    fig, (a, b) = _plt().subplots(1, 2, figsize=(10, 4))
    m[["replicas", "nodes", "instances"]].rename(
        columns={"nodes": "nodes owned", "instances": f"{itype} rented"}
    ).plot(ax=a, drawstyle="steps-post")
    a.set_title(f"Replicas for {c['base_requests_per_s']:.2f} req/s, growing", fontsize=10)
    a.set_ylabel("count")
    m[["onprem_cumulative_usd", "cloud_cumulative_usd"]].set_axis(
        ["buy nodes", f"rent {itype} on-demand"], axis=1
    ).plot(ax=b)
    b.yaxis.set_major_formatter(money)
    a.grid(alpha=0.3)
    _save(
        fig,
        b,
        path,
        "Cumulative cost: buy nodes vs rent instances",
        "month",
        "cumulative cost (USD)",
    )


CHARTS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "cumulative.png": cumulative,
    "savings_vs_utilization.png": savings_curve,
    "options.png": options,
    "per_token.png": per_token,
    "sensitivity.png": sensitivity,
    "workloads.png": workloads,
    "capacity_plan.png": capacity_plan,
}


def draw_all(result: dict[str, Any], folder: Path) -> list[str]:
    """Draw every chart that has data; returns the file names written."""
    skip = {
        "per_token.png": not any(s["tokens"] for s in result["scenarios"]),
        "workloads.png": result["measured"]["by_kind"].empty,
        "capacity_plan.png": not result.get("capacity"),
    }
    names = [name for name in CHARTS if not skip.get(name)]
    for name in names:
        CHARTS[name](result, folder / name)
    return names
