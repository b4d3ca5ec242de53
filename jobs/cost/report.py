"""Write ``reports/cost/<name>/``: report.md and a self-contained report.html, PNG charts, CSV
tables and summary.json.

report.md is rendered from a Jinja2 template (``templates/report.md.jinja``); report.html is
that Markdown rendered by markdown-it-py inside ``templates/report.html.jinja``, with the charts
embedded as base64 PNG (no external resources). Tables are pandas DataFrames: the CSVs hold
their numbers, the report their formatted text. Everything is written to a temporary folder
beside the target and renamed into place only when complete, so a failed run never replaces a
good report::

    folder = write_report(result, paths.reports_dir() / "cost", sources)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt

from cluster.latency import DEFINITION, phrase
from jobs.cost import tables
from jobs.cost.charts import draw_all
from jobs.cost.montecarlo import API, OWN
from jobs.cost.sources import InventorySources

TEMPLATES = Path(__file__).with_name("templates")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown; the HTML is escaped by markdown-it ("html": False)
    )
    env.filters.update(
        usd=tables.usd,
        pct=tables.pct,
        share=tables.share,
        tokens=tables.tokens,
        cell=lambda v: str(v).replace("|", "\\|").replace("\n", " "),
    )
    return env


def latency(result: dict[str, Any]) -> str:
    """The measured fleet's latency at the highest concurrency within the p95 target (or the
    best level), in words."""
    bench = result.get("bench")
    if not bench:
        return "not measured (no benchmark)"
    target = result["inputs"]["config"]["workload"]["latency_p95_s"]
    ok = [lv for lv in bench["levels"] if lv["e2e_p95_s"] <= target]
    level = (
        max(ok, key=lambda lv: lv["concurrency"])
        if ok
        else min(bench["levels"], key=lambda lv: lv["e2e_p95_s"])
    )
    why = "" if ok else f", no level met the p95 target of {target} s"
    old = (
        " (p95 interpolated from p90/p99: an older benchmark)" if level["p95_interpolated"] else ""
    )
    said = phrase(level["e2e_p50_s"], level["e2e_p95_s"], level["concurrency"])
    return (
        f"{said}{old}, {bench['model']} on fleet `{result['measured']['fleet']}` "
        f"(bench {bench['created_at']}{why})"
    )


def markdown(result: dict[str, Any], charts: list[str], src: InventorySources) -> str:
    m, h = result["measured"], result["headline"]
    t = {
        "answer": tables.answer(result),
        "ways": tables.ways(result),
        "shapes": tables.shapes(h),
        "plan": tables.plan(h),
        "tornado": tables.tornado(result),
        "prices": tables.prices(result),
        "scenarios": tables.scenarios(result),
        "inputs": tables.inputs(result, src),
        "usage": tables.usage(m),
        "kinds": None if m["by_kind"].empty else tables.kinds(m),
        "nodes": {s["fleet"]: tables.nodes(s["nodes"]) for s in result["scenarios"]},
        "measured_nodes": tables.nodes(m["nodes"]),
    }
    return (
        _env()
        .get_template("report.md.jinja")
        .render(
            r=result,
            t=t,
            charts=charts,
            legend=src.legend,
            latency=latency(result),
            latency_definition=DEFINITION,
        )
    )


def html(text: str, folder: Path, title: str) -> str:
    """report.md as a self-contained page: images read from ``folder``, embedded as data URIs."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    image = md.renderer.rules["image"]

    def embed(tokens: Any, idx: int, options: Any, env: Any) -> str:
        src = tokens[idx].attrGet("src")
        data = base64.b64encode((folder / src).read_bytes()).decode("ascii")
        tokens[idx].attrSet("src", f"data:image/png;base64,{data}")
        return image(tokens, idx, options, env)

    md.renderer.rules["image"] = embed
    return _env().get_template("report.html.jinja").render(title=title, body=md.render(text))


def write_csvs(result: dict[str, Any], folder: Path, src: InventorySources) -> list[str]:
    h, m, mc = result["headline"], result["measured"], result["montecarlo"]
    frames = {
        "answer.csv": tables.answer(result),
        "ways.csv": h["ways"].reset_index(),
        "montecarlo.csv": mc["savings"]
        .join(mc["pv"], rsuffix="_pv_usd")
        .rename_axis("way")
        .reset_index(),
        "tornado.csv": result["tornado"],
        "plan.csv": h["plan"],
        "cumulative.csv": h["cumulative"].reset_index(),
        "scenarios.csv": tables.scenarios(result),
        "node_costs.csv": pd.concat([s["nodes"] for s in result["scenarios"]]),
        "usage_by_type.csv": m["by_type"],
        "usage_by_kind.csv": m["by_kind"],
        "inputs.csv": tables.inputs(result, src),
    }
    for name, df in frames.items():
        df.to_csv(folder / name, index=False)
    return list(frames)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return json.loads(obj.reset_index().to_json(orient="records"))
    if isinstance(obj, pd.Series):
        return json.loads(obj.to_json())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """summary.json: the decision first, then everything the report was made from."""
    h, mc, m = result["headline"], result["montecarlo"], result["measured"]
    t, s, best = h["ways"], mc["savings"], h["best_rent"]
    own = t.loc[OWN]
    headline = {
        "fleet": h["fleet"],
        "decision": h["decision"],
        "decision_en": result["verdict"]["en"],
        "decision_es": result["verdict"]["es"],
        "savings_pct_p50": s.loc["cheapest alternative", "p50"],
        "savings_pct_p10": s.loc["cheapest alternative", "p10"],
        "savings_pct_p90": s.loc["cheapest alternative", "p90"],
        "p_own_wins": mc["p_own_wins"],
        "own_pv_usd": own["pv_usd"],
        "setup_usd": own["upfront_usd"],
        "cheapest_option": best,
        "cheapest_instance": t.loc[best, "instance"] if best else None,
        "cheapest_pv_usd": t.loc[best, "pv_usd"] if best else None,
        "savings_pct_vs_cheapest": t.loc[best, "savings_pct"] if best else None,
        "savings_pct_vs_on_demand": t.loc["on-demand", "savings_pct"]
        if "on-demand" in t.index
        else None,
        "api": result["inputs"]["config"]["api"][0]["name"],
        "api_pv_usd": t.loc[API, "pv_usd"],
        "savings_pct_vs_api": t.loc[API, "savings_pct"],
        "break_even_tokens_per_day_vs_api": (result["break_even"][API] or {}).get("tokens_per_day"),
        "break_even_utilization_vs_api": (result["break_even"][API] or {}).get("utilization"),
        "break_even_tokens_per_day_vs_rent": (result["break_even"]["rent"] or {}).get(
            "tokens_per_day"
        ),
        "tokens_per_day": result["inputs"]["point"]["tokens_per_day"],
        "throughput": [f"{r['rate']['gpu']}: {r['rate']['label']}" for r in h["shapes"]],
        "usd_per_1m_output_tokens": h["per_1m"],
        "horizon_months": h["months"],
        "discount_rate_pct": result["inputs"]["point"]["discount_rate_pct"],
        "estimates": bool(result["prices"]["estimates"]),
        "measured_fleet": m["fleet"],
        "measured_utilization": m["utilization"],
        "measured_idle": m["idle"],
        "prices": result["prices"]["label"],
    }
    return {"results": headline, **result}


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
        text = markdown(result, charts, src)
        (tmp / "report.md").write_text(text)
        (tmp / "report.html").write_text(html(text, tmp, f"Cost report {result['name']}"))
        write_csvs(result, tmp, src)
        data = json.dumps(summary(result), indent=1, default=_jsonable, allow_nan=False)
        (tmp / "summary.json").write_text(data + "\n")
        _swap(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
