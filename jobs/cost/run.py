"""Preflight (every input read and checked before any work) and the analysis of one report.

inputs = preflight(cfg)            # raises ConfigError listing every bad input -> exit 2
result = analyze(inputs)           # plain numbers (pure)
folder = write_report(result, ...) # see jobs.cost.report
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cluster import paths
from cluster.config import ConfigError, Problem, problems_from_validation
from cluster.inventory import CPU_TYPE, Inventory, Site, load_inventory
from cluster.ledger import Ledger, utcnow
from jobs.cost import analysis
from jobs.cost import capacity as cap
from jobs.cost.aws import pull_live, resolve_prices
from jobs.cost.bench import Bench, BenchError, load_bench, newest_bench
from jobs.cost.config import CostConfig
from jobs.cost.equivalence import EquivalenceError, UnitRate, check_models, instance_for, unit_rate
from jobs.cost.prices import FAMILIES, PriceBook, family
from jobs.cost.sources import InventorySources, inventory_sources
from jobs.cost.tco import HOURS_PER_MONTH
from jobs.cost.usage import Period, period_bounds
from jobs.train.flops import PEAK_BF16, flops_per_token

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """Everything a report is computed from, read and checked."""

    cfg: CostConfig
    fleets: dict[str, Inventory]  # the headline fleet first, then the other scenarios'
    measured: Inventory
    measured_site: Site
    period: Period
    rows: list[dict[str, Any]]
    ledger_url: str
    book: PriceBook
    rates: dict[str, UnitRate]
    bench: Bench | None
    sources: InventorySources
    now: dt.datetime
    notes: list[str] = field(default_factory=list)
    command: str = "python -m jobs.cost_report --config <config>"


def _redact(url: str) -> str:
    try:
        import sqlalchemy as sa

        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an odd URL is still worth showing without its password
        return url.split("@")[-1]


def _measured_site(measured: Inventory, overrides: dict[str, float]) -> tuple[Site, list[Problem]]:
    try:
        return Site.model_validate({**measured.site.model_dump(), **overrides}), []
    except ValidationError as err:
        return measured.site, [
            Problem(f"measured_site.{p.field}", p.value, p.message, p.fix)
            for p in problems_from_validation(Site, err)
        ]


def _bench(cfg: CostConfig, notes: list[str]) -> tuple[Bench | None, list[Problem]]:
    explicit = cfg.bench_path()
    if explicit is not None:
        try:
            return load_bench(explicit), []
        except BenchError as exc:
            return None, [
                Problem("bench", cfg.bench, str(exc), "give a jobs.bench_serve bench.json")
            ]
    if not cfg.newest_bench:
        notes.append("latency and throughput: not measured (no `bench` for this fleet given)")
        return None, []
    found = newest_bench(paths.reports_dir() / "bench")
    if found is None:
        notes.append("latency and throughput: not measured (no bench.json under reports/bench)")
        return None, []
    try:
        return load_bench(found), []
    except BenchError as exc:  # not named by the user: say so and go on without it
        notes.append(f"newest benchmark ignored: {exc}")
        log.warning("newest benchmark ignored: %s", exc)
        return None, []


def preflight(
    cfg: CostConfig,
    *,
    now: dt.datetime | None = None,
    ledger: Ledger | None = None,
    puller: Callable[..., PriceBook] = pull_live,
    command: str | None = None,
) -> Inputs:
    """Read and check every input; raise one ConfigError listing every problem."""
    now = now or utcnow()
    notes: list[str] = []
    fleets = {name: load_inventory(cfg.inventory, name) for name in cfg.fleets}
    measured = load_inventory(cfg.inventory, cfg.measured)
    msite, problems = _measured_site(measured, cfg.measured_site)
    period = period_bounds(now, cfg.period_days, cfg.since, cfg.until)
    ledger = ledger or Ledger()
    try:
        rows = ledger.usage(period.since, period.until)
    except Exception as exc:  # any database error: the message names the ledger
        problem = Problem(
            "ledger",
            _redact(ledger.url),
            f"cannot be read ({type(exc).__name__}: {exc})",
            "check ONPREM_LEDGER_URL / ONPREM_ROOT",
        )
        raise ConfigError("inputs", [problem]) from None
    ledger_types = {str(r["accelerator_type"]) for r in rows}
    problems += check_models(ledger_types, cfg.equivalence, "ledger accelerator_type")
    bench, bench_problems = _bench(cfg, notes)
    problems += bench_problems
    if problems:
        raise ConfigError("inputs", problems)

    nodes = [n for inv in [*fleets.values(), measured] for n in inv.nodes]
    types = sorted({n.accelerator_type for n in nodes} | ledger_types)
    needed = sorted({instance_for(t, cfg.equivalence, cfg.cpu_instance) for t in types})
    book = resolve_prices(
        cfg.pricing,
        needed,
        cfg.region,
        snapshot=cfg.snapshot_path(),
        cache_dir=cfg.cache_path(),
        regions=cfg.regions,
        puller=functools.partial(puller, block_days=cfg.block_days),
    )
    rates: dict[str, UnitRate] = {}
    for t in types:
        try:
            rates[t] = unit_rate(t, book, cfg.region, cfg.equivalence, cfg.cpu_instance)
        except EquivalenceError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("inputs", problems)
    for rate in rates.values():
        notes += rate.notes
    if book.fallback:
        notes.append(f"prices: {book.fallback}")
    return Inputs(
        cfg=cfg,
        fleets=fleets,
        measured=measured,
        measured_site=msite,
        period=period,
        rows=rows,
        ledger_url=_redact(ledger.url),
        book=book,
        rates=rates,
        bench=bench,
        sources=inventory_sources(Path(cfg.inventory)),
        now=now,
        notes=notes,
        command=command or "python -m jobs.cost_report --config <config>",
    )


def replica(cfg: CostConfig, measured: Inventory) -> tuple[str, float]:
    """(accelerator type, units) of one replica: the capacity section's, else one GPU of the
    measured fleet's first GPU type, else all CPUs of its head node."""
    if cfg.capacity:
        return cfg.capacity.accelerator_type, cfg.capacity.units_per_replica
    gpu_types = [n.accelerator_type for n in measured.nodes if n.gpu]
    if gpu_types:
        return gpu_types[0], 1.0
    return CPU_TYPE, float(measured.head.cpus)


def missing_prices(inp: Inputs) -> list[dict[str, Any]]:
    """Per option family, the accelerator types no price is known for (and how to fill it)."""
    out = []
    for fam, text in FAMILIES.items():
        lacking = [
            f"{t} ({r.instance_type})"
            for t, r in inp.rates.items()
            if not any(family(o) == fam for o in r.prices)
        ]
        if lacking:
            out.append({"family": text, "types": lacking, "fill": f"{inp.command} pricing=live"})
    return out


def scenario_view(inp: Inputs, name: str) -> dict[str, Any]:
    """One fleet at the target utilization, and its cost per token when a scenario plans it."""
    cfg, inv = inp.cfg, inp.fleets[name]
    view = analysis.fleet_view(inv, inv.site, inp.rates, cfg.target_utilization, cfg.horizon_months)
    plan = next((s for s in cfg.scenarios if s.fleet == name), None)
    if plan is None:
        return {"view": view, "scenario": None, "tokens": None}
    train = {
        t: plan.train_mfu * PEAK_BF16[t] / flops_per_token(int(plan.params_b * 1e9), lora=True)
        for t in plan.serve_tokens_per_s
        if t in PEAK_BF16
    }
    tokens = analysis.token_view(
        view, plan.serve_tokens_per_s, train, cfg.api, cfg.prompt_tokens, cfg.output_tokens
    )
    tokens["train_tokens_per_s"] = train
    return {"view": view, "scenario": plan.model_dump(), "tokens": tokens}


def served_view(inp: Inputs, measured: dict[str, Any], notes: list[str]) -> tuple[Any, Any]:
    """The measured fleet's benchmark (cost per token, latency) and the capacity plan."""
    cfg, c = inp.cfg, inp.cfg.capacity
    if inp.bench is None:
        if c:
            notes.append("capacity plan: skipped, no benchmark to take the per-replica rate from")
        return None, None
    accel, units = replica(cfg, inp.measured)
    rate = inp.rates[accel]
    served = analysis.bench_view(
        inp.bench,
        c.slo_p95_s if c else None,
        c.bench_replicas if c else 1,
        accel,
        units,
        measured["nodes"],
        rate,
        cfg.target_utilization,
    )
    if served.get("reason"):
        notes.append(f"cost per token and capacity plan: {served['reason']}")
    if not (c and served.get("level")):
        return served, None
    node = next(n for n in inp.measured.nodes if n.accelerator_type == accel)
    running = measured["nodes"].set_index("node").loc[node.name, "running_usd_h"]
    shape = cap.Shape(
        accelerator_type=accel,
        units_per_replica=units,
        tokens_per_s=served["replica_tokens_per_s"],
        units_per_node=node.gpu_count or node.cpus,
        node_capex_usd=node.purchase_usd,
        node_opex_monthly_usd=float(running) * HOURS_PER_MONTH,
        instance_type=rate.instance_type,
        units_per_instance=rate.units_per_instance,
        instance_hourly_usd=rate.on_demand * rate.units_per_instance,
    )
    plan = analysis.capacity_view(
        shape,
        c.requests_per_s,
        c.tokens_per_day,
        cfg.output_tokens,
        c.growth_pct_per_month,
        cfg.horizon_months,
        c.headroom,
    )
    return served, plan | {"config": c.model_dump()}


def analyze(inp: Inputs) -> dict[str, Any]:
    """Every number of the report: plain values and pandas frames (see report.summary)."""
    cfg = inp.cfg
    scenarios = [scenario_view(inp, name) for name in inp.fleets]
    inv, u, months = inp.fleets[cfg.fleet], cfg.target_utilization, cfg.horizon_months
    sensitivity = analysis.sensitivity(inv, inv.site, inp.rates, u, months)
    measured = analysis.measured_view(
        inp.measured, inp.measured_site, inp.rates, inp.rows, inp.period
    )
    notes = list(inp.notes)
    served, capacity = served_view(inp, measured, notes)
    if scenarios[0]["tokens"] is None:
        notes.append(
            f"cost per 1M tokens of fleet {cfg.fleet}: not planned (add a `scenarios` "
            "entry for it with its planned throughput)"
        )
    book = inp.book.model_dump(include={"source", "as_of", "path", "fallback", "sources", "notes"})
    return {
        "created_at": inp.now.isoformat(timespec="seconds"),
        "name": cfg.name or inp.now.strftime("%Y-%m-%d"),
        "region": cfg.region,
        "command": inp.command,
        "prices": book | {"label": inp.book.label(), "missing": missing_prices(inp)},
        "rates": {t: (r.instance_type, r.units_per_instance, r.unit) for t, r in inp.rates.items()},
        "planned": scenarios[0]["view"],
        "tokens": scenarios[0]["tokens"],
        "scenarios": scenarios,
        "sensitivity": sensitivity,
        "measured": measured,
        "bench": dataclasses.asdict(inp.bench) | {"path": str(inp.bench.path)}
        if inp.bench
        else None,
        "served": served,
        "capacity": capacity,
        "ledger": {"url": inp.ledger_url, "period": inp.period.label()},
        "inputs": {
            "site": inv.site.model_dump(mode="json"),
            "measured_site": dict(cfg.measured_site),
            "nodes": {
                f.fleet: [n.model_dump(mode="json") for n in f.nodes]
                for f in [*inp.fleets.values(), inp.measured]
            },
            "config": cfg.model_dump(mode="json"),
        },
        "notes": notes,
    }
