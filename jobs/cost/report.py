"""Write ``reports/cost/<name>/``: report.md, a self-contained report.html, PNG charts, CSV
tables and summary.json.

Everything is written to a temporary folder beside the target and renamed into place only when
complete, so a failed run never replaces a good report::

    folder = write_report(result, paths.reports_dir() / "cost", sources)
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from jobs.cost import tables
from jobs.cost.charts import draw_all
from jobs.cost.document import Bullets as B
from jobs.cost.document import H, Img, P, Table, markdown
from jobs.cost.document import html as render_html
from jobs.cost.sources import InventorySources
from jobs.cost.tables import month, pct, share, usd

METHOD = [
    "On-prem hourly cost per node = capex / (amortization_years x 8760) + power (kW x "
    "avg_power_fraction x PUE x $/kWh) + colocation (kW x $/kW-month x 12 / 8760) + support "
    "(support % x capex / 8760) + staff (staff $/year / 8760 / nodes).",
    "Setup cost = capex + site setup. Maintenance per year = power + colocation + support + "
    "staff (depreciation excluded: the capex is counted once, up front).",
    "Cumulative on-prem cost = setup cost + maintenance x months (the hardware's value after the "
    "horizon is ignored, which favours the cloud).",
    "Cloud: each GPU model maps to the AWS instance with the same GPU, priced per GPU-hour "
    "(instance price / GPUs); CPU-only nodes per vCPU-hour of a general-purpose instance. "
    "On-demand and spot are paid for busy hours only (capacity x utilization); reservations "
    "for every hour of their term, like owned hardware.",
    "Break-even month = (capex + setup) / (cloud per month - on-prem maintenance per month); it "
    "exists only when the cloud costs more per month than on-prem maintenance. Against "
    "reservations it uses their effective monthly price (upfront spread over the term).",
    "Cost per 1M tokens = hourly cost of one replica / (output tokens/s x 3600 x utilization) x "
    "1e6, with the benchmark's output-token rate at the highest concurrency whose p95 latency "
    "meets the SLO (p95 interpolated between p90 and p99 when not recorded).",
]


def _doc(result: dict[str, Any], charts: list[str], src: InventorySources) -> list:
    p, m = result["planned"], result["measured"]
    od = p["options"]["on-demand"]
    doc: list = [
        H(1, f"Cost report: on-prem vs AWS ({result['name']})"),
        P(
            f"Generated {result['created_at']} UTC. Prices: {result['prices']['label']}. "
            f"Region {result['region']}. Ledger period: {result['ledger']['period']}."
        ),
        H(2, "Results"),
        P(
            f"Planned view: fleet `{p['fleet']}` ({p['summary']}) busy "
            f"{p['target_utilization']:.0%} of the hours for {p['months']} months, against AWS "
            "renting the same GPUs and vCPUs for the same busy hours."
        ),
        Table(*tables.results(result)),
        P(
            f"Break-even vs on-demand: {month(od.get('break_even_month'), p['months'])}. "
            f"Break-even utilization: {share(p['break_even_utilization'])} of the hours; below "
            "it, renting on-demand is cheaper than owning this fleet over the horizon."
        ),
        P(
            f"Measured view: fleet `{m['fleet']}` over {m['period']['hours']:.0f} h: "
            f"utilization {share(m['utilization'])}; the fleet cost {usd(m['onprem_usd'])} "
            f"(busy or idle); the same work on AWS on-demand would have cost "
            f"{usd(m['cloud_usd']['on-demand'])} -> savings {pct(m['savings_pct'])}."
        ),
    ]
    if result["notes"]:
        doc += [H(3, "Notes"), B(result["notes"])]
    sections = [
        ("cumulative.png", f"Cumulative cost over {p['months']} months", tables.options),
        ("savings_vs_utilization.png", "Savings vs utilization", None),
        ("pricing_options.png", "On-demand, reserved and spot", tables.rates),
        ("workloads.png", "Usage by workload (ledger)", None),
    ]
    for name, title, table in sections:
        doc.append(H(2, title))
        if name in charts:
            doc.append(Img(name, title))
        if table is not None:
            doc.append(Table(*table(result)))
        if name == "savings_vs_utilization.png":
            doc.append(
                P(
                    "Owned hardware costs the same busy or idle; on-demand and spot cost only "
                    "while busy. Each point is the saving over the horizon at that utilization."
                )
            )
        if name == "workloads.png":
            doc += [Table(*tables.usage(result)), Table(*tables.kinds(result))]
            if m["not_in_fleet"]:
                doc.append(
                    P(
                        f"Usage on {', '.join(m['not_in_fleet'])} is not on fleet "
                        f"`{m['fleet']}`: it is priced in the cloud column only."
                    )
                )
    doc.append(H(2, "Cost per 1M generated tokens"))
    tok = result.get("tokens")
    if tok and tok.get("level"):
        lv = tok["level"]
        unit = "CPU" if tok["accelerator_type"] == "CPU" else f"{tok['accelerator_type']} GPU"
        per_unit_hour = tok["replica_tokens_per_s"] * 3600 / tok["replica_units"]
        doc.append(
            P(
                f"One replica ({tok['replica_units']:g} x {unit}) makes "
                f"{tok['replica_tokens_per_s']:.1f} output tokens/s at concurrency "
                f"{lv['concurrency']} (p95 {lv['e2e_p95_s']:.2f} s): {per_unit_hour:,.0f} tokens "
                f"per {unit}-hour."
            )
        )
        doc.append(Table(*tables.tokens(result)))
    else:
        doc.append(P((tok or {}).get("reason") or "not measured: no benchmark"))
    doc.append(H(2, "Capacity plan"))
    if result.get("capacity"):
        c = result["capacity"]
        cross = c["crossover_month"]
        doc += [
            P(
                f"Load {c['base_requests_per_s']:.2f} req/s ({c['base_tokens_per_s']:.0f} output "
                f"tokens/s) today, growing {c['config']['growth_pct_per_month']}% a month, p95 "
                f"SLO {c['config']['slo_p95_s']} s, replicas planned at "
                f"{c['config']['headroom']:.0%} of their measured rate. Buy "
                f"{c['nodes_to_buy']} node(s) or rent up to {c['instances_last']} "
                f"{c['shape']['instance_type']}; buying is cheaper "
                + (f"from month {cross}." if cross is not None else "at no point in the plan.")
            ),
            Img("capacity_plan.png", "capacity plan"),
            Table(*tables.capacity(result)),
        ]
    else:
        doc.append(P("not planned: no capacity section in the config, or no benchmark"))
    doc += [
        H(2, "On-prem cost per node"),
        P(f"Planned fleet `{p['fleet']}`:"),
        Table(*tables.nodes(result, "planned")),
    ]
    if m["fleet"] != p["fleet"]:
        doc += [P(f"Measured fleet `{m['fleet']}`:"), Table(*tables.nodes(result, "measured"))]
    doc += [
        H(2, "Inputs and their sources"),
        Table(*tables.inputs(result, src)),
        P("Tags in the inventory's comments:"),
        B([f"[{tag}] {text}" for tag, text in src.legend.items()]),
        P("Price sources:"),
        B(
            [f"{k}: {v}" for k, v in result["prices"]["sources"].items()]
            + result["prices"]["notes"]
        ),
        H(2, "Method"),
        B(METHOD),
    ]
    return doc


def _csv(path: Path, headers: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)


def _dict_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_csvs(result: dict[str, Any], folder: Path, src: InventorySources) -> list[str]:
    p = result["planned"]
    for name, (headers, rows) in {
        "results.csv": tables.results(result),
        "options.csv": tables.options(result),
        "rates.csv": tables.rates(result),
        "inputs.csv": tables.inputs(result, src),
    }.items():
        _csv(folder / name, headers, rows)
    _dict_csv(folder / "node_costs.csv", p["nodes"])
    _dict_csv(folder / "usage_by_type.csv", result["measured"]["by_type"])
    _dict_csv(folder / "usage_by_kind.csv", result["measured"]["by_kind"])
    avail = [o for o, v in p["options"].items() if v["available"]]
    _csv(
        folder / "cumulative.csv",
        ["month", "onprem_usd", *[f"{o}_usd" for o in avail]],
        [
            [
                i,
                p["onprem_cumulative_usd"][i],
                *[p["options"][o]["cumulative_usd"][i] for o in avail],
            ]
            for i in range(p["months"] + 1)
        ],
    )
    curve = p["savings_curve_pct"]
    _csv(
        folder / "savings_vs_utilization.csv",
        ["utilization", *[f"savings_vs_{o}_pct" for o in curve]],
        [[u, *[curve[o][i] for o in curve]] for i, u in enumerate(p["utilization_grid"])],
    )
    names = [
        "results.csv",
        "options.csv",
        "rates.csv",
        "inputs.csv",
        "node_costs.csv",
        "usage_by_type.csv",
        "usage_by_kind.csv",
        "cumulative.csv",
        "savings_vs_utilization.csv",
    ]
    if result.get("capacity"):
        _dict_csv(folder / "capacity_plan.csv", result["capacity"]["months"])
        names.append("capacity_plan.csv")
    return names


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """summary.json: the headline numbers first, then everything the report was made from."""
    p = result["planned"]
    od = p["options"]["on-demand"]
    tok = result.get("tokens") or {}
    lv = tok.get("level") or {}
    return {
        "results": {
            "setup_usd": p["setup_usd"],
            "maintenance_per_year_usd": p["maintenance_per_year_usd"],
            "cloud_on_demand_per_year_usd": od["monthly_usd"] * 12 if od["available"] else None,
            "latency_p50_s": lv.get("e2e_p50_s"),
            "latency_p95_s": lv.get("e2e_p95_s"),
            "savings_pct_vs_on_demand": od.get("savings_pct"),
            "break_even_month_vs_on_demand": od.get("break_even_month"),
            "break_even_utilization": p["break_even_utilization"],
            "target_utilization": p["target_utilization"],
            "horizon_months": p["months"],
            "measured_utilization": result["measured"]["utilization"],
            "measured_savings_pct": result["measured"]["savings_pct"],
            "prices": result["prices"]["label"],
        },
        **result,
    }


def _swap(tmp: Path, final: Path) -> None:
    """Put ``tmp`` in place of ``final``; the old report is removed only after the rename."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def write_report(result: dict[str, Any], root: Path, src: InventorySources) -> Path:
    """Write the whole report under ``root/<name>/`` atomically; returns the folder."""
    final = root / result["name"]
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{result['name']}.tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the report is for everyone who reads reports/
    try:
        charts = draw_all(result, tmp)
        doc = _doc(result, charts, src)
        (tmp / "report.md").write_text(markdown(doc))
        title = f"Cost report {result['name']}"
        (tmp / "report.html").write_text(render_html(doc, tmp, title))
        write_csvs(result, tmp, src)
        (tmp / "summary.json").write_text(json.dumps(summary(result), indent=1, default=str) + "\n")
        _swap(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
