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
complete (:func:`cluster.atomic.replacing`), so a failed run never replaces a good report::

    folder = write_report(result, paths.reports_dir() / "cost", sources)
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markupsafe import Markup

from cluster.atomic import replacing
from cluster.config import folder_name
from cluster.latency import DEFINITION, phrase
from jobs.cost import tables
from jobs.cost.charts import draw_all
from jobs.cost.montecarlo import API, OWN
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
        tokens=tables.tokens,
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


def write_report(result: dict[str, Any], root: Path, src: InventorySources) -> Path:
    """Write the whole report under ``root/<name>/`` atomically; returns the folder."""
    folder_name(result["name"])  # the config checks it; this writer trusts no caller
    final = root / result["name"]
    with replacing(final) as tmp:
        tmp.mkdir()
        charts = draw_all(result, tmp)
        text = markdown(result, charts, src)
        (tmp / "report.md").write_text(text)
        (tmp / "report.html").write_text(html(text, tmp, f"Cost report {result['name']}", charts))
        write_csvs(result, tmp, src)
        data = json.dumps(summary(result), indent=1, default=_jsonable, allow_nan=False)
        (tmp / "summary.json").write_text(data + "\n")
    return final
