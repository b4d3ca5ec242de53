"""The report's PNG charts (matplotlib, Agg backend), each drawn from the analysis result.

names = draw_all(result, folder)   # ["cumulative.png", "savings_vs_utilization.png", ...]
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.cost.tables import unavailable

LOCAL = "#1f77b4"
CLOUD = {
    "on-demand": "#d62728",
    "1yr No Upfront": "#ff7f0e",
    "1yr All Upfront": "#bcbd22",
    "3yr No Upfront": "#9467bd",
    "3yr All Upfront": "#8c564b",
    "spot": "#2ca02c",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)


def _k(x: float, _pos: Any = None) -> str:
    return (
        f"${x / 1e6:.1f}M"
        if abs(x) >= 1e6
        else f"${x / 1e3:.0f}k"
        if abs(x) >= 1e3
        else f"${x:.0f}"
    )


def cumulative(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    p = result["planned"]
    months = list(range(p["months"] + 1))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(months, p["onprem_cumulative_usd"], color=LOCAL, lw=2.5, label="on-prem (owned)")
    for opt, o in p["options"].items():
        if o["available"]:
            ax.plot(months, o["cumulative_usd"], color=CLOUD[opt], lw=1.6, label=f"AWS {opt}")
    be = p["options"]["on-demand"].get("break_even_month")
    if be is not None and be <= p["months"]:
        y = p["setup_usd"] + p["opex_monthly_usd"] * be
        ax.axvline(be, color="black", ls="--", lw=1)
        ax.annotate(
            f"break-even vs on-demand: month {be:.1f}",
            (be, y),
            xytext=(8, -30),
            textcoords="offset points",
            arrowprops={"arrowstyle": "->"},
            fontsize=9,
        )
    ax.yaxis.set_major_formatter(_k)
    ax.set_xlabel("months")
    ax.set_ylabel("cumulative cost (USD)")
    ax.set_title(
        f"fleet {p['fleet']} at {p['target_utilization']:.0%} utilization: cumulative cost",
        fontsize=11,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    _save(fig, path)


def savings_curve(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    p = result["planned"]
    grid = [u * 100 for u in p["utilization_grid"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    for opt, values in p["savings_curve_pct"].items():
        ax.plot(grid, values, "-o", ms=3, color=CLOUD[opt], label=f"vs AWS {opt}")
    ax.axhline(0, color="black", lw=1)
    ax.axvline(p["target_utilization"] * 100, color=LOCAL, ls="--", lw=1, label="target")
    be = p.get("break_even_utilization")
    if be is not None and be <= 1:
        ax.axvline(be * 100, color="black", ls=":", lw=1, label=f"break-even ({be:.0%})")
    mu = result["measured"].get("utilization")
    if mu is not None and result["measured"]["fleet"] == p["fleet"]:
        ax.axvline(mu * 100, color="gray", ls=":", lw=1.5, label=f"measured ({mu:.1%})")
    ax.set_ylim(max(min(min(v) for v in p["savings_curve_pct"].values()), -200), 100)
    ax.set_xlabel("utilization of the fleet (% of hours busy)")
    ax.set_ylabel(f"savings over {p['months']} months (%)")
    ax.set_title("owning pays only when the fleet is busy: savings vs utilization", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def options(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    p = result["planned"]
    labels, values, colors = ["on-prem"], [p["onprem_total_usd"]], [LOCAL]
    missing = []
    for opt, o in p["options"].items():
        if o["available"]:
            labels.append(opt)
            values.append(o["total_usd"])
            colors.append(CLOUD[opt])
        else:
            missing.append(opt)
    fig, ax = plt.subplots(figsize=(9, 4))
    bars = ax.bar(labels, values, color=colors)
    for bar, v in zip(bars, values, strict=True):
        ax.annotate(_k(v), (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom")
    ax.yaxis.set_major_formatter(_k)
    ax.set_ylabel(f"total over {p['months']} months (USD)")
    title = "on-prem vs AWS on-demand / reserved / spot"
    if missing:
        title += "\n" + textwrap.fill(f"({unavailable(result)})", 110)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def workloads(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    rows = result["measured"]["by_kind"]
    gpu = sum(r["gpu_hours"] for r in rows) > 0
    key, unit = ("gpu_hours", "GPU-hours") if gpu else ("cpu_hours", "CPU-hours")
    kinds = sorted({r["kind_type"].split("/")[0] for r in rows})
    types = sorted({r["kind_type"].split("/")[1] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 3.8))
    bottom = [0.0] * len(kinds)
    for t in types:
        vals = [sum(r[key] for r in rows if r["kind_type"] == f"{k}/{t}") for k in kinds]
        ax.bar(kinds, vals, bottom=bottom, label=t)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    if not rows:
        ax.text(0.5, 0.5, "no usage recorded in the period", ha="center", transform=ax.transAxes)
    ax.set_ylabel(unit)
    ax.set_title(
        f"{unit} by workload, fleet {result['measured']['fleet']} ({result['ledger']['period']})",
        fontsize=10,
    )
    if rows:
        ax.legend(fontsize=8, title="accelerator")
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def capacity_plan(result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    c = result["capacity"]
    months = [m["month"] for m in c["months"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.step(months, [m["replicas"] for m in c["months"]], where="post", label="replicas")
    a.step(months, [m["nodes"] for m in c["months"]], where="post", label="nodes owned")
    a.step(months, [m["instances"] for m in c["months"]], where="post", ls="--", label="instances")
    a.set_xlabel("month")
    a.set_title(f"capacity for {c['base_requests_per_s']:.2f} req/s growing", fontsize=10)
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    b.plot(months, [m["onprem_cumulative_usd"] for m in c["months"]], color=LOCAL, label="buy")
    b.plot(
        months,
        [m["cloud_cumulative_usd"] for m in c["months"]],
        color=CLOUD["on-demand"],
        label=f"rent {c['shape']['instance_type']} on-demand",
    )
    b.yaxis.set_major_formatter(_k)
    b.set_xlabel("month")
    b.set_title("cumulative cost: buy nodes vs rent instances", fontsize=10)
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    _save(fig, path)


CHARTS: dict[str, tuple[str, Callable[[dict[str, Any], Path], None]]] = {
    "cumulative.png": ("cumulative cost over the horizon, break-even marked", cumulative),
    "savings_vs_utilization.png": ("savings vs utilization", savings_curve),
    "pricing_options.png": ("on-demand / reserved / spot comparison", options),
    "workloads.png": ("usage by workload from the ledger", workloads),
    "capacity_plan.png": ("capacity plan", capacity_plan),
}


def draw_all(result: dict[str, Any], folder: Path) -> list[str]:
    """Draw every chart that has data; returns the file names written."""
    names = []
    for name, (_, draw) in CHARTS.items():
        if name == "capacity_plan.png" and not result.get("capacity"):
            continue
        if name == "savings_vs_utilization.png" and not result["planned"]["savings_curve_pct"]:
            continue
        draw(result, folder / name)
        names.append(name)
    return names
