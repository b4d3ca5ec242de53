"""Write ``reports/cost/<name>/``: report.md and a self-contained report.html, PNG charts, CSV
tables and summary.json.

report.md is rendered from a Jinja2 template (``templates/report.md.jinja``); report.html is
that Markdown rendered by markdown-it-py inside ``templates/report.html.jinja``, with the charts
this job drew embedded as base64 PNG (no external resources). Tables are pandas DataFrames: the
CSVs hold their numbers, the report their formatted text.

Strings in the report come from the ledger (any pod with the ledger URL can write a row), the
configs and the inventory, so none of them is trusted: every value the Markdown template prints
is escaped for Markdown (:func:`md_text`), the page's title for HTML, CSV cells for spreadsheets
(:func:`csv_safe`), and report.html embeds only the charts :func:`draw_all` wrote, by name.

Everything is written to a temporary folder beside the target and renamed into place only when
complete, so a failed run never replaces a good report::

    folder = write_report(result, paths.reports_dir() / "cost", sources)
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markupsafe import Markup

from cluster.config import folder_name
from cluster.latency import DEFINITION, phrase
from jobs.cost import tables
from jobs.cost.charts import draw_all
from jobs.cost.sources import InventorySources

TEMPLATES = Path(__file__).with_name("templates")

# What can turn text into live Markdown: links and images need "[", raw HTML and autolinks "<",
# entities "&", table cells "|", and "\\" could undo an escape. Backticks stay: a code span is
# inert (it shows its content literally; the tables wrap fleet names in them).
_MD_SPECIAL = re.compile(r"([\\\[\]<>&|])")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")  # a new line could start a new block
# Spreadsheets run a cell that starts with one of these as a formula (OWASP: CSV injection).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\$?[0-9.,]*%?")  # "-12.5%", "-$1,000", "-": a number, not a formula


def md_text(value: Any) -> Markup:
    """``value`` as Markdown that shows it literally: one line, Markdown syntax escaped."""
    if hasattr(value, "__html__"):  # already Markdown: a macro's output or a cell
        return value
    return Markup(_MD_SPECIAL.sub(r"\\\1", _BREAKS.sub(" ", str(value))))


def _env() -> jinja2.Environment:
    # The template writes Markdown, not HTML: autoescape is on only so that Jinja keeps what is
    # already Markdown (macro output, cells: Markup) apart from raw values, which `finalize`
    # escapes for Markdown before Jinja's HTML escape sees them (and leaves them alone).
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=True,
        finalize=md_text,
    )
    env.filters.update(
        usd=tables.usd,
        pct=tables.pct,
        share=tables.share,
        busy=tables.busy,
        cell=md_text,
    )
    return env


def _html_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
    )


def latency(result: dict[str, Any]) -> str:
    """The measured fleet's latency at the operating point (or the best level), in words."""
    served, bench = result.get("served") or {}, result.get("bench")
    if not bench:
        return "not measured (no benchmark)"
    level, why = served.get("level"), ""
    if level is None:
        level = min(bench["levels"], key=lambda lv: lv["e2e_p95_s"])
        why = f", no level met the p95 SLO of {served['slo_p95_s']} s" if served else ""
    old = " (p95 interpolated from p90/p99: an older benchmark)"
    interp = old if level["p95_interpolated"] else ""
    said = phrase(level["e2e_p50_s"], level["e2e_p95_s"], level["concurrency"])
    return (
        f"{said}{interp}, {bench['model']} on fleet `{result['measured']['fleet']}` "
        f"(bench {bench['created_at']}{why})"
    )


def markdown(result: dict[str, Any], charts: list[str], src: InventorySources) -> str:
    m = result["measured"]
    t = {
        "results": tables.results(result),
        "options": tables.options(result["planned"]),
        "prices": tables.prices(result),
        "scenarios": tables.scenarios(result),
        "sensitivity": tables.sensitivity(result),
        "inputs": tables.inputs(result, src),
        "usage": tables.usage(m),
        "kinds": None if m["by_kind"].empty else tables.kinds(m),
        "served": tables.served(result) if (result.get("served") or {}).get("level") else None,
        "capacity": tables.capacity(result) if result.get("capacity") else None,
        "nodes": {s["view"]["fleet"]: tables.nodes(s["view"]) for s in result["scenarios"]},
        "measured_nodes": tables.nodes(m),
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


def html(text: str, folder: Path, title: str, charts: list[str]) -> str:
    """report.md as a self-contained page: the ``charts`` this job drew into ``folder``,
    embedded as data URIs. Any other image is shown as its alt text: nothing else is read."""
    drawn = set(charts)
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    image = md.renderer.rules["image"]

    def embed(tokens: Any, idx: int, options: Any, env: Any) -> str:
        src = tokens[idx].attrGet("src")
        if src not in drawn:
            alt = md.renderer.renderInlineAsText(tokens[idx].children or [], options, env)
            return escapeHtml(alt)
        data = base64.b64encode((folder / src).read_bytes()).decode("ascii")
        tokens[idx].attrSet("src", f"data:image/png;base64,{data}")
        return image(tokens, idx, options, env)

    md.renderer.rules["image"] = embed
    page = _html_env().get_template("report.html.jinja")
    return page.render(title=title, body=Markup(md.render(text)))


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell and column name that a spreadsheet would run as a formula
    prefixed with ``'`` (shown as text); numbers, and text that reads as one, are kept."""

    def safe(v: Any) -> Any:
        if isinstance(v, str) and v.startswith(_FORMULA) and not _NUMBER.fullmatch(v):
            return "'" + v
        return v

    out = df.rename(columns=safe)
    text = out.select_dtypes(include=["object", "string"]).columns
    out[text] = out[text].map(safe) if len(text) else out[text]
    return out


def write_csvs(result: dict[str, Any], folder: Path, src: InventorySources) -> list[str]:
    p, m = result["planned"], result["measured"]
    frames = {
        "results.csv": tables.results(result),
        "options.csv": p["options"].reset_index(),
        "prices.csv": p["prices"],
        "cumulative.csv": p["cumulative"].reset_index(),
        "savings_vs_utilization.csv": p["savings_curve"].reset_index(),
        "scenarios.csv": tables.scenarios(result),
        "per_token.csv": pd.concat(
            {s["view"]["fleet"]: s["tokens"]["table"] for s in result["scenarios"] if s["tokens"]},
            names=["fleet"],
        ).reset_index()
        if result["tokens"]
        else pd.DataFrame(),
        "sensitivity.csv": result["sensitivity"],
        "node_costs.csv": pd.concat([s["view"]["nodes"] for s in result["scenarios"]]),
        "usage_by_type.csv": m["by_type"],
        "usage_by_kind.csv": m["by_kind"],
        "inputs.csv": tables.inputs(result, src),
    }
    if result.get("capacity"):
        frames["capacity_plan.csv"] = result["capacity"]["months"]
    for name, df in frames.items():
        csv_safe(df).to_csv(folder / name, index=False)
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
    """summary.json: the headline numbers first, then everything the report was made from."""
    p, m, tok = result["planned"], result["measured"], result["tokens"]
    best, od, own = p["cheapest"], p["on_demand"], p["owned"]
    level = (result.get("served") or {}).get("level") or {}
    headline = {
        "fleet": p["fleet"],
        "setup_usd": own["upfront_usd"],
        "running_per_year_usd": own["running_monthly_usd"] * 12,
        "capital_per_year_usd": own["capital_monthly_usd"] * 12,
        "owned_total_usd": own["total_usd"],
        "cheapest_option": best["option"],
        "cheapest_total_usd": best["total_usd"],
        "cloud_on_demand_per_year_usd": od["monthly_usd"] * 12,
        "on_demand_total_usd": od["total_usd"],
        **{f"{k}_vs_{name}": r[k] for name, r in (("cheapest", best), ("on_demand", od))
           for k in ("savings_pct", "break_even_month", "break_even_utilization")},
        "api": result["inputs"]["config"]["api"][0]["name"],
        "usd_per_1m_output_tokens": tok["table"]["serve_usd_per_1m"].to_dict() if tok else None,
        "savings_pct_vs_api": tok["api"]["savings_pct"] if tok else None,
        "target_utilization": p["utilization"],
        "horizon_months": p["months"],
        "measured_fleet": m["fleet"],
        "measured_utilization": m["utilization"],
        "measured_idle": m["idle"],
        "measured_savings_pct": m["savings_pct"],
        "measured_latency_p50_s": level.get("e2e_p50_s"),
        "measured_latency_p95_s": level.get("e2e_p95_s"),
        "prices": result["prices"]["label"],
    }  # fmt: skip
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
    folder_name(result["name"])  # the config checks it; this writer trusts no caller
    final = root / result["name"]
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{result['name']}.tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the report is for everyone who reads reports/
    try:
        charts = draw_all(result, tmp)
        text = markdown(result, charts, src)
        (tmp / "report.md").write_text(text)
        (tmp / "report.html").write_text(html(text, tmp, f"Cost report {result['name']}", charts))
        write_csvs(result, tmp, src)
        data = json.dumps(summary(result), indent=1, default=_jsonable, allow_nan=False)
        (tmp / "summary.json").write_text(data + "\n")
        _swap(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
