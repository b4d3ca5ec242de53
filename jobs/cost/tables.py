"""The report's tables as pandas DataFrames of display strings (rendered by the templates) and
the number formats they use. Each function takes the analysis result (``run.analyze``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from jobs.cost.sources import InventorySources


def usd(x: float | None, small: bool = False) -> str:
    """Whole dollars from $100 up; cents below; four decimals under $1 (per-hour prices)."""
    if x is None or pd.isna(x):
        return "n/a"
    if x == 0:
        return "$0"
    if small or abs(x) < 100:
        return f"${x:,.4f}" if abs(x) < 1 else f"${x:,.2f}"
    return f"${x:,.0f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:.{digits}f}%"


def share(x: float | None) -> str:
    if x is None or pd.isna(x):
        return "n/a"
    return "less than 0.1%" if 0 < x < 0.001 else f"{x:.1%}"


def month(x: float | None, horizon: int | None = None) -> str:
    if x is None or pd.isna(x):
        return "never (renting costs no more per month than owning does)"
    text = f"month {x:.1f}"
    return f"{text} (beyond the {horizon}-month horizon)" if horizon and x > horizon else text


def busy(x: float | None, paid_for: str = "hours used") -> str:
    if paid_for == "every hour":
        return "none: paid every hour, used or not"
    if x is None or pd.isna(x):
        return "never"
    return f"{x:.1%} of the hours" + (" (more than every hour: never)" if x > 1 else "")


def results(result: dict[str, Any]) -> pd.DataFrame:
    """The Results table: the owned fleet vs the cheapest AWS option able to carry it, vs
    AWS on-demand and vs the cloud API the team pays (for the tokens the fleet would make)."""
    p, tok, api = result["planned"], result["tokens"], result["inputs"]["config"]["api"][0]
    own, months = p["owned"], p["months"]
    rented = {"cheapest AWS": p["cheapest"], "AWS on-demand": p["on_demand"]}
    if tok is not None:  # the API billed for the tokens the fleet would make at utilization u
        rented[api["name"]] = tok["api"] | {"upfront_usd": 0.0, "monthly_usd": tok["api"][
            "per_year_usd"] / 12, "option": "api"}  # fmt: skip
    per_1m = tok["table"] if tok is not None else None

    def tokens(who: str, col: str) -> str:
        return usd(per_1m.loc[who, col], True) if per_1m is not None else "not planned"

    rent = {
        "cheapest AWS": "rent",
        "AWS on-demand": "rent for the busy hours",
        api["name"]: "for the fleet's output tokens, with their prompts",
    }
    rows = {
        "Paid up front": [
            f"{usd(own['upfront_usd'])} ({usd(own['capex_usd'])} servers, "
            f"{usd(own['network_storage_usd'])} network and storage, {usd(own['spares_usd'])} "
            f"spares, {usd(own['setup_usd'])} setup)",
            *(usd(r["upfront_usd"]) for r in rented.values()),
        ],
        "Paid per year": [
            f"{usd(own['running_monthly_usd'] * 12)} running (power, colocation, support, staff) "
            f"+ {usd(own['capital_monthly_usd'] * 12)} cost of capital",
            *(f"{usd(r['monthly_usd'] * 12)} {rent[w]}" for w, r in rented.items()),
        ],
        f"Total over {months} months": [
            usd(own["total_usd"])
            + (f" (after {usd(own['residual_usd'])} resale)" if own["residual_usd"] else ""),
            *(usd(r["total_usd"]) for r in rented.values()),
        ],
        "Owning saves": ["-", *(pct(r["savings_pct"]) for r in rented.values())],
        "Break-even (month; utilization)": [
            "-",
            *(f"{month(r['break_even_month'], months)}; {busy(r['break_even_utilization'])}"
              for r in rented.values()),
        ],
        "USD per 1M output tokens": [tokens(w, "serve_usd_per_1m") for w in ["owned", *rented]],
        "USD per 1M training tokens": [tokens(w, "train_usd_per_1m") for w in ["owned", *rented]],
        "Latency": ["not measured on this fleet (the laptop's is under Measured)"]
        + ["not measured"] * len(rented),
    }  # fmt: skip
    columns = [
        f"Local: fleet `{p['fleet']}`, owned, {p['utilization']:.0%} busy",
        f"AWS, cheapest able to carry it: {p['cheapest']['option']}",
        "AWS on-demand",
        f"Cloud API: {api['name']} (list prices)",
    ][: 1 + len(rented)]
    return pd.DataFrame(rows, index=columns).T.rename_axis("").reset_index()


def options(view: dict[str, Any]) -> pd.DataFrame:
    o = view["options"]
    months = view["months"]
    return pd.DataFrame(
        {
            "AWS option": o.index,
            "paid for": o["paid_for"],
            "on-demand for": o["on_demand_for"].map(lambda ts: ", ".join(ts) or "-"),
            "per month": o["monthly_usd"].map(usd),
            f"total {months} months": o["total_usd"].map(usd),
            "owning saves": o["savings_pct"].map(pct),
            "break-even month": o["break_even_month"].map(lambda x: month(x, months)),
            "break-even utilization": [
                busy(x, paid)
                for x, paid in zip(o["break_even_utilization"], o["paid_for"], strict=True)
            ],
        }
    )


def prices(result: dict[str, Any]) -> pd.DataFrame:
    p = result["planned"]["prices"]
    units = {t: f"{n} {u}" for t, (_, n, u) in result["rates"].items()}
    unit = {t: u for t, (_, _, u) in result["rates"].items()}
    return pd.DataFrame(
        {
            "on-prem": p["accelerator_type"],
            "AWS instance (holds)": [
                f"{result['rates'][t][0]} ({units[t]})" for t in p["accelerator_type"]
            ],
            "option": p["option"],
            "per unit-hour (effective)": [
                f"{usd(v, True)} per {unit[t]}-h"
                for v, t in zip(p["effective_usd_h"], p["accelerator_type"], strict=True)
            ],
            "of which up front": p["upfront_usd"].map(lambda v: usd(v) if v else "-"),
            "source, as of": p["source"] + ", " + p["as_of"],
            "note": p["note"],
        }
    )


def scenarios(result: dict[str, Any]) -> pd.DataFrame:
    """Fleets side by side: each its own break-even and its own cost per 1M tokens."""
    cols = {}
    api = result["inputs"]["config"]["api"]
    for s in result["scenarios"]:
        v, tok, plan = s["view"], s["tokens"], s["scenario"] or {}
        best, od = v["cheapest"], v["on_demand"]
        col = {
            "hardware": v["summary"].split(": ", 1)[1],
            "serves": plan.get("model", "not planned"),
            f"owned, {v['months']} months": usd(v["owned"]["total_usd"]),
            "cheapest AWS option": best["option"],
            "owning saves vs cheapest AWS": pct(best["savings_pct"]),
            "owning saves vs on-demand": pct(od["savings_pct"]),
            "break-even vs cheapest: month": month(best["break_even_month"], v["months"]),
            "break-even vs cheapest: utilization": busy(best["break_even_utilization"]),
            "break-even vs on-demand: utilization": busy(od["break_even_utilization"]),
        }
        if tok is not None:
            t = tok["table"]
            col |= {
                "output tokens a month (planned)": f"{tok['tokens_per_month'] / 1e6:,.0f}M",
                "USD per 1M output tokens: owned": usd(t.loc["owned", "serve_usd_per_1m"], True),
                "... cheapest AWS": usd(t.loc["cheapest AWS", "serve_usd_per_1m"], True),
                "... AWS on-demand": usd(t.loc["AWS on-demand", "serve_usd_per_1m"], True),
                **{
                    f"... {a['name']}": usd(t.loc[a["name"], "serve_usd_per_1m"], True) for a in api
                },
                "USD per 1M training tokens: owned": usd(t.loc["owned", "train_usd_per_1m"], True),
                **{
                    f"... {a['name']}, training": usd(a["training_usd_per_1m"], True)
                    for a in api
                    if a["training_usd_per_1m"] is not None
                },
                f"owning beats {api[0]['name']} above": (
                    f"{tok['api_break_even_tokens_per_month'] / 1e6:,.0f}M output tokens a month"
                ),
            }
        cols[f"`{v['fleet']}`"] = col
    return pd.DataFrame(cols).fillna("-").rename_axis("").reset_index()


def sensitivity(result: dict[str, Any]) -> pd.DataFrame:
    s = result["sensitivity"]
    return pd.DataFrame(
        {
            "what changes": s["what changes"],
            "to": s["to"],
            "owned total": s["owned_total_usd"].map(usd),
            "owning saves vs cheapest AWS": s["savings_vs_cheapest_pct"].map(pct),
            "cheapest AWS option": s["cheapest_option"],
            "owning saves vs on-demand": s["savings_vs_on_demand_pct"].map(pct),
        }
    )


def nodes(view: dict[str, Any]) -> pd.DataFrame:
    n = view["nodes"]
    out = n[["node", "accelerator_type", "units"]].rename(
        columns={"accelerator_type": "type", "units": "GPUs/CPUs"}
    )
    out["capex"] = n["capex_usd"].map(usd)
    for col in ("depreciation", "power", "colocation", "support", "staff", "running", "total"):
        out[f"{col} /h"] = n[f"{col}_usd_h"].map(lambda v: usd(v, True))
    return out


UNITS = {"gpu": "GPU-h", "cpu": "CPU-h", "node": "node-h"}


def usage(measured: dict[str, Any]) -> pd.DataFrame:
    b = measured["by_type"]
    out = pd.DataFrame({"accelerator": b["accelerator_type"]})
    for kind, unit in UNITS.items():
        out[f"{unit} used"] = b[f"{kind}_hours_used"].map("{:.2f}".format)
        out[f"{unit} provisioned"] = b[f"{kind}_hours_provisioned"].map("{:.0f}".format)
    out["utilization"] = b["utilization"].map(share)
    return out


def kinds(measured: dict[str, Any]) -> pd.DataFrame:
    k = measured["by_kind"]
    out = k[["kind", "accelerator_type", "status"]].rename(columns={"accelerator_type": "on"})
    for kind, unit in UNITS.items():
        out[unit] = k[f"{kind}_hours"].map("{:.2f}".format)
    return out


def served(result: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "where": list(result["served"]["per_1m"]),
            "USD per 1M generated tokens": [
                usd(v, True) for v in result["served"]["per_1m"].values()
            ],
        }
    )


def capacity(result: dict[str, Any], every: int = 6) -> pd.DataFrame:
    c = result["capacity"]
    m = c["months"]
    m = m[(m["month"] % every == 0) | (m.index == m.index[-1])]
    unit = "GPUs" if c["shape"]["accelerator_type"] != "CPU" else "CPUs"
    return pd.DataFrame(
        {
            "month": m["month"],
            "req/s": m["demand_requests_per_s"].map("{:.2f}".format),
            "output tok/s": m["demand_tokens_per_s"].map("{:.0f}".format),
            "replicas": m["replicas"],
            unit: m["units"].map("{:g}".format),
            "nodes owned": m["nodes"],
            f"{c['shape']['instance_type']} rented": m["instances"],
            "buy: cumulative": m["onprem_cumulative_usd"].map(usd),
            "rent: cumulative": m["cloud_cumulative_usd"].map(usd),
        }
    )


def inputs(result: dict[str, Any], src: InventorySources) -> pd.DataFrame:
    """Every input figure with its source."""
    cfg = result["inputs"]
    rows: list[tuple[str, str, str]] = []
    for fleet, node_list in cfg["nodes"].items():
        rows.append((f"fleet `{fleet}`", f"{len(node_list)} nodes", "cluster/inventory.yaml"))
        for n in node_list:
            for key in ("purchase_usd", "power_w", "gpu"):
                if n.get(key) is not None:
                    note = src.node(fleet, n["name"], key) or "cluster/inventory.yaml"
                    rows.append((f"{fleet}/{n['name']}.{key}", str(n[key]), note))
    for key, value in cfg["site"].items():
        over = cfg["measured_site"].get(key)
        text = f"{value}" + (f" (measured fleet: {over}, config)" if over is not None else "")
        rows.append((f"site.{key}", text, src.site.get(key) or "cluster/inventory.yaml"))
    for a in cfg["config"]["api"]:
        rows.append(
            (
                f"API {a['name']}",
                f"in ${a['input_usd_per_1m']}, out ${a['output_usd_per_1m']}, training "
                f"${a['training_usd_per_1m']} per 1M tokens",
                a["source"],
            )
        )
    for s in cfg["config"]["scenarios"]:
        rows.append(
            (
                f"scenario `{s['fleet']}`",
                f"{s['model']}; {s['params_b']:g}B parameters; output tok/s per GPU "
                f"{s['serve_tokens_per_s']}; training MFU {s['train_mfu']:.0%}",
                s["source"],
            )
        )
    rows.append(("ledger", result["ledger"]["url"], f"period {result['ledger']['period']}"))
    bench = result.get("bench")
    rows.append(
        ("benchmark", bench["path"] if bench else "none", bench["created_at"] if bench else "-")
    )
    for key in (
        "target_utilization",
        "horizon_months",
        "region",
        "pricing",
        "prompt_tokens",
        "output_tokens",
        "block_days",
    ):
        rows.append((key, str(cfg["config"][key]), "config"))
    for key, value in (cfg["config"].get("capacity") or {}).items():
        if value is not None:
            rows.append((f"capacity.{key}", str(value), "config"))
    return pd.DataFrame(rows, columns=["figure", "value", "source"])
