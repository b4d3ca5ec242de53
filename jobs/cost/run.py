"""Preflight (every input read and checked before any work) and the analysis of one report.

inputs = preflight(cfg)            # raises ConfigError listing every bad input -> exit 2
result = analyze(inputs)           # plain numbers (pure)
folder = write_report(result, ...) # see jobs.cost.report
"""

from __future__ import annotations

import datetime as dt
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
from jobs.cost.prices import PriceBook
from jobs.cost.sources import InventorySources, inventory_sources
from jobs.cost.tco import HOURS_PER_MONTH, SiteRates
from jobs.cost.usage import Period, period_bounds

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """Everything a report is computed from, read and checked."""

    cfg: CostConfig
    planned: Inventory
    measured: Inventory
    planned_site: SiteRates
    measured_site: SiteRates
    period: Period
    rows: list[dict[str, Any]]
    ledger_url: str
    book: PriceBook
    rates: dict[str, UnitRate]
    bench: Bench | None
    sources: InventorySources
    now: dt.datetime
    notes: list[str] = field(default_factory=list)


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
) -> Inputs:
    """Read and check every input; raise one ConfigError listing every problem."""
    now = now or utcnow()
    notes: list[str] = []
    planned = load_inventory(cfg.inventory, cfg.fleet)
    measured = load_inventory(cfg.inventory, cfg.measured)
    msite, problems = _measured_site(measured, cfg.measured_site)
    period = period_bounds(now, cfg.period_days, cfg.since, cfg.until)
    ledger = ledger or Ledger()
    try:
        rows = ledger.usage(period.since, period.until)
    except Exception as exc:  # any database error: the message names the ledger
        raise ConfigError(
            "inputs",
            [
                Problem(
                    "ledger",
                    _redact(ledger.url),
                    f"cannot be read ({type(exc).__name__}: {exc})",
                    "check ONPREM_LEDGER_URL / ONPREM_ROOT",
                )
            ],
        ) from None
    ledger_types = {str(r["accelerator_type"]) for r in rows}
    problems += check_models(ledger_types, cfg.equivalence, "ledger accelerator_type")
    bench, bench_problems = _bench(cfg, notes)
    problems += bench_problems
    if problems:
        raise ConfigError("inputs", problems)

    types = sorted({n.accelerator_type for n in [*planned.nodes, *measured.nodes]} | ledger_types)
    needed = sorted({instance_for(t, cfg.equivalence, cfg.cpu_instance) for t in types})
    book = resolve_prices(
        cfg.pricing,
        needed,
        cfg.region,
        snapshot=cfg.snapshot_path(),
        cache_dir=cfg.cache_path(),
        regions=cfg.regions,
        puller=puller,
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
        planned=planned,
        measured=measured,
        planned_site=analysis.site_rates(planned.site),
        measured_site=analysis.site_rates(msite),
        period=period,
        rows=rows,
        ledger_url=_redact(ledger.url),
        book=book,
        rates=rates,
        bench=bench,
        sources=inventory_sources(Path(cfg.inventory)),
        now=now,
        notes=notes,
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


def analyze(inp: Inputs) -> dict[str, Any]:
    """Every number of the report, JSON-ready."""
    cfg = inp.cfg
    planned = analysis.planned_view(
        inp.planned, inp.planned_site, inp.rates, cfg.target_utilization, cfg.horizon_months
    )
    measured = analysis.measured_view(
        inp.measured, inp.measured_site, inp.rates, inp.rows, inp.period
    )
    accel, units = replica(cfg, inp.measured)
    measured_nodes = analysis.fleet_costs(inp.measured, inp.measured_site)
    tokens = capacity = None
    notes = list(inp.notes)
    if inp.bench is not None:
        slo = cfg.capacity.slo_p95_s if cfg.capacity else None
        tokens = analysis.token_view(
            inp.bench,
            slo,
            cfg.capacity.bench_replicas if cfg.capacity else 1,
            accel,
            units,
            measured_nodes,
            inp.rates,
            cfg.target_utilization,
        )
        if tokens.get("reason"):
            notes.append(f"cost per token and capacity plan: {tokens['reason']}")
    if cfg.capacity and tokens and tokens.get("level"):
        node = next(n for n in inp.measured.nodes if n.accelerator_type == accel)
        node_cost = next(c for c in measured_nodes if c.name == node.name)
        rate = inp.rates[accel]
        shape = cap.Shape(
            accelerator_type=accel,
            units_per_replica=units,
            tokens_per_s=tokens["replica_tokens_per_s"],
            units_per_node=node.gpu_count or node.cpus,
            node_capex_usd=node.purchase_usd,
            node_opex_monthly_usd=node_cost.opex * HOURS_PER_MONTH,
            instance_type=rate.instance_type,
            units_per_instance=rate.units_per_instance,
            instance_hourly_usd=rate.instance_on_demand,
        )
        c = cfg.capacity
        capacity = analysis.capacity_view(
            shape,
            c.requests_per_s,
            c.tokens_per_day,
            c.output_tokens,
            c.growth_pct_per_month,
            cfg.horizon_months,
            c.headroom,
        )
        capacity["config"] = c.model_dump()
    elif cfg.capacity and inp.bench is None:
        notes.append("capacity plan: skipped, no benchmark to take the per-replica rate from")
    return {
        "created_at": inp.now.isoformat(timespec="seconds"),
        "name": cfg.name or inp.now.strftime("%Y-%m-%d"),
        "region": cfg.region,
        "prices": {
            "label": inp.book.label(),
            "source": inp.book.source,
            "as_of": inp.book.as_of,
            "path": inp.book.path,
            "fallback": inp.book.fallback,
            "sources": inp.book.sources,
            "notes": inp.book.notes,
        },
        "rates": {t: _rate_row(r) for t, r in inp.rates.items()},
        "planned": planned,
        "measured": measured,
        "bench": _bench_row(inp.bench),
        "tokens": tokens,
        "capacity": capacity,
        "ledger": {"url": inp.ledger_url, "period": inp.period.label()},
        "inputs": {
            "site": inp.planned.site.model_dump(mode="json"),
            "measured_site": dict(cfg.measured_site),
            "nodes": {
                inv.fleet: [n.model_dump(mode="json") for n in inv.nodes]
                for inv in (inp.planned, inp.measured)
            },
            "config": cfg.model_dump(mode="json"),
        },
        "notes": notes,
    }


def _rate_row(r: UnitRate) -> dict[str, Any]:
    return {
        "instance_type": r.instance_type,
        "unit": r.unit,
        "units_per_instance": r.units_per_instance,
        "instance_on_demand_usd_h": r.instance_on_demand,
        "on_demand_usd_unit_h": r.on_demand,
        "spot_usd_unit_h": r.spot,
        "reserved_usd_unit_h": r.reserved,
    }


def _bench_row(b: Bench | None) -> dict[str, Any] | None:
    if b is None:
        return None
    return {
        "path": str(b.path),
        "created_at": b.created_at,
        "model": b.model,
        "url": b.url,
        "max_tokens": b.max_tokens,
        "levels": [vars(lv) for lv in b.levels],
    }
