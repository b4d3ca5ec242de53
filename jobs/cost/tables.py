"""The report's tables as pandas DataFrames of display strings (rendered by the templates), and
the number formats they use. Each function takes the analysis result (``analysis.analyze``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from jobs.cost.montecarlo import API, OWN
from jobs.cost.prices import term_years
from jobs.cost.sources import InventorySources


def usd(x: float | None, small: bool = False) -> str:
    """Whole dollars from $100 up; cents below; four decimals under $1 (per-hour prices)."""
    if x is None or pd.isna(x):
        return "n/a"
    if x == 0:
        return "$0"
    if abs(x) >= 1e6 and not small:
        return f"${x / 1e6:,.2f}M"
    if small or abs(x) < 100:
        return f"${x:,.4f}" if abs(x) < 1 else f"${x:,.2f}"
    return f"${x:,.0f}"


def pct(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:+.{digits}f}%"


def share(x: float | None) -> str:
    if x is None or pd.isna(x):
        return "n/a"
    return "less than 0.1%" if 0 < x < 0.001 else f"{x:.1%}"


def tokens(x: float | None) -> str:
    return "n/a" if x is None else f"{x / 1e6:,.0f}M"


def _name(way: str, api: str) -> str:
    return {OWN: "own the fleet", API: f"API: {api}"}.get(way, f"AWS {way}")


def billed(way: str) -> str:
    if way == OWN:
        return "capex up front, running every month, resale at the horizon"
    if way == API:
        return "per token (output + prompts)"
    if way == "on-demand":
        return "hours used: follows the load, the spare stays up"
    if way == "Capacity Block":
        return "whole days prepaid, held around the clock (182-day blocks)"
    return f"every hour of a {term_years(way)}-year term, bought as the need rises"


def answer(result: dict[str, Any]) -> pd.DataFrame:
    """The first table: owning against the cheapest rent, on-demand and the API."""
    h, mc = result["headline"], result["montecarlo"]
    api = result["inputs"]["config"]["api"][0]["name"]
    ways = [w for w in dict.fromkeys([OWN, h["best_rent"], "on-demand", API]) if w]
    t, s, pv = h["ways"], mc["savings"], mc["pv"]
    per = {OWN: "owned", h["best_rent"]: "cheapest AWS", "on-demand": "AWS on-demand", API: api}
    return pd.DataFrame(
        {
            "": [_name(w, api) + (f" on {t.loc[w, 'instance']}" if w not in (OWN, API) else "")
                 for w in ways],
            f"present value, {h['months']} months": [usd(t.loc[w, "pv_usd"]) for w in ways],
            "P10-P90": [f"{usd(pv.loc[w, 'p10'])}-{usd(pv.loc[w, 'p90'])}" for w in ways],
            "owning saves (P50, P10 to P90)": ["-"] + [
                f"{pct(s.loc[w, 'p50'])} ({pct(s.loc[w, 'p10'])} to {pct(s.loc[w, 'p90'])})"
                for w in ways[1:]
            ],
            "USD per 1M output tokens": [usd(h["per_1m"].get(per[w]), True) for w in ways],
        }
    )  # fmt: skip


def ways(result: dict[str, Any]) -> pd.DataFrame:
    """Every way of serving the demand over the horizon, with its range."""
    h, s = result["headline"], result["montecarlo"]["savings"]
    api = result["inputs"]["config"]["api"][0]["name"]
    t = h["ways"].sort_values("pv_usd")
    return pd.DataFrame(
        {
            "way": [_name(w, api) for w in t.index],
            "instance": t["instance"].fillna("-"),
            "billed": [billed(w) for w in t.index],
            "paid at the start": t["upfront_usd"].map(usd),
            "total (cash)": t["total_usd"].map(usd),
            "of which owed after the horizon": t["after_horizon_usd"].map(usd),
            "present value": t["pv_usd"].map(usd),
            "owning saves (P50)": [pct(s.loc[w, "p50"]) if w in s.index else "-" for w in t.index],
            "P10 to P90": [f"{pct(s.loc[w, 'p10'])} to {pct(s.loc[w, 'p90'])}"
                           if w in s.index else "-" for w in t.index],
        }
    )  # fmt: skip


def shapes(view: dict[str, Any]) -> pd.DataFrame:
    """The instance chosen for each replica shape, and the throughput used (labelled)."""
    return pd.DataFrame(
        {
            "replica": [f"{s['rate']['gpus_per_replica']} x {s['rate']['gpu']}"
                        for s in view["shapes"]],
            "output tok/s per GPU": [f"{s['rate']['tokens_per_s']:.1f} ({s['rate']['label']})"
                                     for s in view["shapes"]],
            "instance": [f"{s['instance']} ({s['replicas_per_instance']} replica(s))"
                         for s in view["shapes"]],
            "why": [s["why"] for s in view["shapes"]],
            "throughput: where it comes from": [s["rate"]["how"] for s in view["shapes"]],
        }
    )  # fmt: skip


def plan(view: dict[str, Any], every: int = 6) -> pd.DataFrame:
    p = view["plan"]
    p = p[(p.month % every == 0) | (p.index == p.index[-1])]
    out = pd.DataFrame(
        {
            "month": p.month,
            "output tok/s (mean / busiest hour)": [
                f"{a:,.0f} / {b:,.0f}"
                for a, b in zip(p.tokens_per_s, p.peak_tokens_per_s, strict=True)
            ],
        }
    )
    for col in [c for c in p.columns if c.startswith("replicas_") or c.endswith("_instances")]:
        out[col.replace("_", " ")] = p[col].map("{:,.0f}".format)
    out["servers added to the inventory"] = p.nodes_added.map("{:,.0f}".format)
    out["owned GPUs busy (mean)"] = p.owned_utilization.map(share)
    return out  # fmt: skip


def tornado(result: dict[str, Any]) -> pd.DataFrame:
    t = result["tornado"]
    return pd.DataFrame(
        {
            "input": t["input"],
            **{f"{end} -> owning saves": [f"{v:g}: {pct(s)}" for v, s in zip(
                t[f"value_{end}"], t[f"savings_pct_{end}"], strict=True)]
               for end in ("low", "high")},
            "cheapest at low / high": t.decision_low + " / " + t.decision_high,
            "flips the verdict": t.flips.map({True: "**yes**", False: "no"}),
        }
    )  # fmt: skip


def prices(result: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for s in result["headline"]["shapes"]:
        for o, p in s["prices"].items():
            rows.append((s["instance"], o, usd(p["hourly_usd"], True),
                         usd(p["upfront_usd"]) if p["upfront_usd"] else "-",
                         f"{p['source']}, {p['as_of']}",
                         f"ESTIMATE: {p['estimate']}" if p.get("estimate")
                         else p.get("note") or ""))  # fmt: skip
    cols = ["instance", "option", "per instance-hour", "up front", "source, as of", "note"]
    return pd.DataFrame(rows, columns=cols)


def scenarios(result: dict[str, Any]) -> pd.DataFrame:
    api = result["inputs"]["config"]["api"]
    cols = {}
    for v in result["scenarios"]:
        t, best = v["ways"], v["best_rent"]
        cols[f"`{v['fleet']}`"] = {
            "hardware": v["summary"].split(": ", 1)[1],
            "serves": v["model_name"],
            "cheapest way (point)": _name(v["decision"], api[0]["name"]),
            "own: present value": usd(t.loc[OWN, "pv_usd"]),
            f"cheapest AWS: {best}": usd(t.loc[best, "pv_usd"]) if best else "n/a",
            f"API {api[0]['name']}": usd(t.loc[API, "pv_usd"]),
            "USD per 1M output tokens, owned": usd(v["per_1m"]["owned"], True),
            "... cheapest AWS": usd(v["per_1m"].get("cheapest AWS"), True),
            **{f"... {a['name']}": usd(v["per_1m"][a["name"]], True) for a in api},
        }
    return pd.DataFrame(cols).fillna("-").rename_axis("").reset_index()


def nodes(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["node", "accelerator_type", "units"]].rename(
        columns={"accelerator_type": "type", "units": "GPUs/CPUs"}
    )
    out["capex"] = frame["capex_usd"].map(usd)
    for col in ("power", "colocation", "support", "failures", "staff", "running", "depreciation"):
        out[f"{col} /h"] = frame[f"{col}_usd_h"].map(lambda v: usd(v, True))
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


def inputs(result: dict[str, Any], src: InventorySources) -> pd.DataFrame:
    """Every input figure with its range and source."""
    cfg, point, ranges = result["inputs"], result["inputs"]["point"], result["inputs"]["ranges"]
    c = cfg["config"]
    where = {k: f"site: {src.site.get(k) or 'cluster/inventory.yaml'}" for k in cfg["site"]}
    where |= {"tokens_per_day": "workload", "growth_pct_per_month": "workload",
              "peak_to_mean": "workload", "prompt_tokens": "workload",
              "training_gpu_hours_per_month": result["training"]["source"],
              "storage_gb": c["cloud"]["source"],
              "egress_bytes_per_token": c["cloud"]["source"]}  # fmt: skip
    rows = [(k, f"{point[k]:g}", f"{ranges[k][0]:g} to {ranges[k][1]:g}" if k in ranges else "-",
             where.get(k, "config")) for k in sorted(point)]  # fmt: skip
    for fleet, node_list in cfg["nodes"].items():
        for n in node_list:
            for key in ("purchase_usd", "power_w", "gpu"):
                if n.get(key) is not None:
                    note = src.node(fleet, n["name"], key) or "cluster/inventory.yaml"
                    rows.append((f"{fleet}/{n['name']}.{key}", str(n[key]), "-", note))
    for a in c["api"]:
        rows.append((f"API {a['name']}", f"in ${a['input_usd_per_1m']}, out "
                     f"${a['output_usd_per_1m']} per 1M tokens", "-", a["source"]))  # fmt: skip
    for s in c["scenarios"]:
        shapes_ = ", ".join(f"{g} x{r['gpus']}" for g, r in s["replicas"].items())
        rows.append((f"scenario `{s['fleet']}`", f"{s['model']}; {shapes_}", "-", s["source"]))
    rows.append(("ledger", result["ledger"]["url"], "-", f"period {result['ledger']['period']}"))
    return pd.DataFrame(rows, columns=["input", "value", "range", "source"])
