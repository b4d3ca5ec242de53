"""The report's tables as rows of strings (shared by report.md, report.html and the CSVs).

Each function takes the analysis result (``run.analyze``) and returns ``(headers, rows)``.
"""

from __future__ import annotations

from typing import Any

from jobs.cost.sources import InventorySources

Rows = tuple[list[str], list[list[str]]]


def usd(x: float | None, small: bool = False) -> str:
    if x is None:
        return "n/a"
    if small or abs(x) < 100:
        return f"${x:,.4f}" if abs(x) < 1 else f"${x:,.2f}"
    return f"${x:,.0f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}%"


def share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def month(x: float | None, horizon: int | None = None) -> str:
    if x is None:
        return "never (the cloud costs no more per month than on-prem opex)"
    text = f"month {x:.1f}"
    return f"{text} (beyond the {horizon}-month horizon)" if horizon and x > horizon else text


def latency(result: dict[str, Any]) -> str:
    tokens, bench = result.get("tokens"), result.get("bench")
    if not bench:
        return "not measured (no bench.json under reports/bench)"
    level = (tokens or {}).get("level")
    if level is None:
        best = min(bench["levels"], key=lambda lv: lv["e2e_p95_s"])
        level, why = (
            best,
            f", no level met the p95 SLO of {tokens['slo_p95_s']} s" if tokens else "",
        )
    else:
        why = ""
    interp = " (p95 interpolated from p90/p99)" if level["p95_interpolated"] else ""
    return (
        f"{level['e2e_p50_s']:.2f} s / {level['e2e_p95_s']:.2f} s end-to-end{interp} at "
        f"concurrency {level['concurrency']}, {bench['model']} on fleet "
        f"`{result['measured']['fleet']}` (bench {bench['created_at']}{why})"
    )


def unavailable(result: dict[str, Any]) -> str:
    """Which price options are missing, and for which accelerator types, grouped."""
    p = result["planned"]
    source = result["prices"]["source"]
    groups: dict[str, list[str]] = {}
    for opt, o in p["options"].items():
        if o["available"]:
            continue
        if set(o["missing"]) >= set(p["units"]):
            why = f"not in the {source} prices"
        else:
            why = f"no {', '.join(o['missing'])} price in the {source} prices"
        groups.setdefault(why, []).append(opt)
    return "; ".join(f"{', '.join(opts)}: {why}" for why, opts in groups.items())


def results(result: dict[str, Any]) -> Rows:
    """The brief's Results table: local vs cloud, planned view vs on-demand."""
    p = result["planned"]
    od = p["options"]["on-demand"]
    u = p["target_utilization"]
    cloud_year = od["monthly_usd"] * 12 if od["available"] else None
    savings_other = [
        f"{opt}: {pct(o['savings_pct'])}"
        for opt, o in p["options"].items()
        if opt != "on-demand" and o["available"]
    ]
    other = "; ".join(savings_other) or "no other price option available"
    gaps = unavailable(result)
    if gaps:
        other += f" ({gaps})"
    rows = [
        [
            "Setup cost",
            f"{usd(p['setup_usd'])} ({usd(p['capex_usd'])} hardware + "
            f"{usd(p['site_setup_usd'])} site setup)",
            "$0 (on-demand: nothing up front)",
        ],
        [
            "Maintenance cost per year",
            f"{usd(p['maintenance_per_year_usd'])} (power, colocation, support, staff)",
            f"{usd(cloud_year)} (on-demand bill for the same work at {u:.0%} utilization)",
        ],
        ["Latency (measured p50 / p95)", latency(result), "not measured"],
        [
            "Total cost savings",
            f"{pct(od.get('savings_pct'))} over {p['months']} months vs on-demand, "
            f"at {u:.0%} utilization; {other}",
            f"{usd(od.get('total_usd'))} on-demand over {p['months']} months "
            f"vs {usd(p['onprem_total_usd'])} on-prem",
        ],
    ]
    return ["", f"Local (on-prem fleet `{p['fleet']}`)", f"Cloud (AWS {result['region']})"], rows


def options(result: dict[str, Any]) -> Rows:
    p = result["planned"]
    rows = []
    for opt, o in p["options"].items():
        if not o["available"]:
            rows.append([opt, f"no {', '.join(o['missing'])} price", "", "", "", ""])
            continue
        basis = "busy hours only" if opt in ("on-demand", "spot") else "every hour of the term"
        rows.append(
            [
                opt,
                basis,
                usd(o["monthly_usd"]),
                usd(o["total_usd"]),
                pct(o["savings_pct"]),
                month(o["break_even_month"], p["months"]),
            ]
        )
    headers = [
        "AWS option",
        "paid for",
        "per month",
        f"total {p['months']} months",
        "on-prem savings",
        "break-even",
    ]
    return headers, rows


def rates(result: dict[str, Any]) -> Rows:
    rows = []
    for accel, r in result["rates"].items():
        reserved = "; ".join(f"{t} {usd(v, True)}" for t, v in r["reserved_usd_unit_h"].items())
        rows.append(
            [
                accel,
                r["instance_type"],
                f"{r['units_per_instance']} {r['unit']}",
                usd(r["instance_on_demand_usd_h"], True),
                usd(r["on_demand_usd_unit_h"], True),
                usd(r["spot_usd_unit_h"], True)
                if r["spot_usd_unit_h"] is not None
                else "not in prices",
                reserved or "not in prices",
            ]
        )
    headers = [
        "on-prem",
        "AWS instance",
        "holds",
        "instance on-demand /h",
        "on-demand per unit-h",
        "spot per unit-h (median of AZs)",
        "reserved per unit-h",
    ]
    return headers, rows


def nodes(result: dict[str, Any], view: str) -> Rows:
    v = result[view]
    rows = [
        [
            n["node"],
            n["accelerator_type"],
            str(n["units"]),
            usd(n["capex_usd"]),
            *(
                usd(n[k], True)
                for k in (
                    "depreciation_usd_h",
                    "power_usd_h",
                    "colocation_usd_h",
                    "support_usd_h",
                    "staff_usd_h",
                    "total_usd_h",
                )
            ),
        ]
        for n in v["nodes"]
    ]
    headers = [
        "node",
        "type",
        "GPUs/CPUs",
        "capex",
        "depreciation /h",
        "power /h",
        "colocation /h",
        "support /h",
        "staff /h",
        "total /h",
    ]
    return headers, rows


def usage(result: dict[str, Any]) -> Rows:
    m = result["measured"]
    rows = [
        [
            r["accelerator_type"] + ("" if r["in_fleet"] else " (not in this fleet)"),
            f"{r['gpu_hours']:.2f}",
            f"{r['cpu_hours']:.2f}",
            f"{r['node_hours']:.2f}",
            f"{r['provisioned_gpu_hours']:.0f}",
            f"{r['provisioned_cpu_hours']:.0f}",
            f"{r['provisioned_node_hours']:.0f}",
            share(r["utilization"]),
        ]
        for r in m["by_type"]
    ]
    headers = [
        "accelerator",
        "GPU-h used",
        "CPU-h used",
        "node-h used",
        "GPU-h provisioned",
        "CPU-h provisioned",
        "node-h provisioned",
        "utilization",
    ]
    return headers, rows


def kinds(result: dict[str, Any]) -> Rows:
    rows = [
        [
            *r["kind_type"].split("/"),
            str(r["workloads"]),
            f"{r['gpu_hours']:.2f}",
            f"{r['cpu_hours']:.2f}",
            f"{r['node_hours']:.2f}",
        ]
        for r in result["measured"]["by_kind"]
    ]
    return ["workload kind", "accelerator", "records", "GPU-h", "CPU-h", "node-h"], rows


def tokens(result: dict[str, Any]) -> Rows:
    t = result.get("tokens") or {}
    if not t.get("level"):
        return ["", ""], []
    u = result["planned"]["target_utilization"]
    rows = [
        ["on-prem, busy every hour", usd(t["local_per_1m_full_usd"], True)],
        [
            f"on-prem at {u:.0%} utilization (idle hours paid)",
            usd(t["local_per_1m_target_usd"], True),
        ],
    ]
    for opt, v in t["cloud_per_1m_usd"].items():
        paid = "busy hours" if opt in ("on-demand", "spot") else f"every hour, {u:.0%} busy"
        rows.append([f"AWS {t['instance_type']} {opt} ({paid})", usd(v, True) if v else "n/a"])
    return ["where", "USD per 1M generated tokens"], rows


def capacity(result: dict[str, Any], every: int = 6) -> Rows:
    c = result["capacity"]
    chosen = [m for m in c["months"] if m["month"] % every == 0 or m is c["months"][-1]]
    rows = [
        [
            str(m["month"]),
            f"{m['demand_requests_per_s']:.2f}",
            f"{m['demand_tokens_per_s']:.0f}",
            str(m["replicas"]),
            f"{m['units']:g}",
            str(m["nodes"]),
            str(m["instances"]),
            usd(m["onprem_cumulative_usd"]),
            usd(m["cloud_cumulative_usd"]),
        ]
        for m in chosen
    ]
    unit = "GPUs" if c["shape"]["accelerator_type"] != "CPU" else "CPUs"
    headers = [
        "month",
        "req/s",
        "output tok/s",
        "replicas",
        unit,
        "nodes owned",
        f"{c['shape']['instance_type']} rented",
        "buy: cumulative",
        "rent: cumulative",
    ]
    return headers, rows


def inputs(result: dict[str, Any], src: InventorySources) -> Rows:
    """Every input figure with its source."""
    cfg = result["inputs"]
    rows: list[list[str]] = []
    for view in ("planned", "measured"):
        v = result[view]
        if view == "measured" and v["fleet"] == result["planned"]["fleet"]:
            continue
        rows.append([f"fleet `{v['fleet']}`", v["summary"], "cluster/inventory.yaml"])
    site = cfg["site"]
    for key, value in site.items():
        note = src.site.get(key) or "cluster/inventory.yaml"
        over = cfg["measured_site"].get(key)
        value_text = f"{value}" + (f" (measured fleet: {over}, config)" if over is not None else "")
        rows.append([f"site.{key}", value_text, note])
    for fleet, node_list in cfg["nodes"].items():
        for n in node_list:
            for key in ("purchase_usd", "power_w", "gpu"):
                if n.get(key) is None:
                    continue
                note = src.node(fleet, n["name"], key) or "cluster/inventory.yaml"
                rows.append([f"{fleet}/{n['name']}.{key}", str(n[key]), note])
    prices = result["prices"]
    for accel, r in result["rates"].items():
        rows.append(
            [
                f"price {r['instance_type']} ({accel})",
                f"{usd(r['instance_on_demand_usd_h'], True)}/h on-demand",
                f"{prices['source']} as of {prices['as_of']}",
            ]
        )
    rows.append(["ledger", result["ledger"]["url"], f"period {result['ledger']['period']}"])
    bench = result.get("bench")
    rows.append(
        ["benchmark", bench["path"] if bench else "none", bench["created_at"] if bench else "-"]
    )
    for key in ("target_utilization", "horizon_months", "region", "pricing"):
        rows.append([key, str(cfg["config"][key]), "config"])
    if cfg["config"].get("capacity"):
        for key, value in cfg["config"]["capacity"].items():
            if value is not None:
                rows.append([f"capacity.{key}", str(value), "config"])
    return ["figure", "value", "source"], rows
