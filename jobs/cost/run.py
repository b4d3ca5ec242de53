"""Preflight: every input read and checked before any work, one ConfigError listing every problem.

inputs = preflight(cfg)            # -> exit 2 on a bad input
result = analysis.analyze(inputs)  # plain numbers and frames (pure)
folder = write_report(result, ...) # see jobs.cost.report
"""

from __future__ import annotations

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
from cluster.inventory import Inventory, Site, load_inventory
from cluster.ledger import Ledger, utcnow
from jobs.cost import demand
from jobs.cost.aws import pull_live, resolve_prices
from jobs.cost.bench import Bench, BenchError, load_bench, newest_bench
from jobs.cost.billing import DAYS_PER_MONTH
from jobs.cost.config import CostConfig
from jobs.cost.instances import (
    AWS_GPU_NAME,
    EquivalenceError,
    Pick,
    Shape,
    cheapest_instance,
    check_models,
    unit_on_demand,
)
from jobs.cost.prices import PriceBook, load_price_book
from jobs.cost.sources import InventorySources, inventory_sources
from jobs.cost.usage import Period, period_bounds

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """Everything a report is computed from, read and checked."""

    cfg: CostConfig
    fleets: dict[str, Inventory]  # the headline fleet first
    measured: Inventory
    measured_site: Site
    period: Period
    rows: list[dict[str, Any]]
    ledger_url: str
    book: PriceBook
    picks: dict[str, list[Pick | None]]  # fleet -> per replica shape of its scenario
    rates: dict[str, list[demand.Rate]]
    unit_rates: dict[str, tuple[str, float]]  # measured view: type -> (instance, USD/unit-h)
    training_gpu_hours: float
    training_source: str
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
    found = newest_bench(paths.reports_dir() / "bench") if cfg.newest_bench else None
    if found is None:
        notes.append("latency of the measured fleet: not measured (no benchmark)")
        return None, []
    try:
        return load_bench(found), []
    except BenchError as exc:  # not named by the user: say so and go on without it
        notes.append(f"newest benchmark ignored: {exc}")
        return None, []


def _memory(inv: Inventory, gpu: str) -> float:
    return next((n.gpu.memory_gb for n in inv.nodes if n.gpu and n.gpu.model == gpu), 0.0)


def _candidates(cfg: CostConfig, fleets: list[Inventory]) -> list[str]:
    """Instance types to pull live: those of the snapshot that carry the fleets' GPUs, pins."""
    snap = load_price_book(cfg.snapshot_path(), "snapshot").regions.get(cfg.region, {})
    names = {AWS_GPU_NAME.get(t, t) for f in fleets for t in f.gpus_by_type()}
    gpu = [t for t, i in snap.items() if i.gpu and i.gpu.name in names]
    return sorted({*gpu, *cfg.equivalence.values(), cfg.cpu_instance})


def _training(
    cfg: CostConfig, rows: list[dict[str, Any]], gpu: str, days: float
) -> tuple[float, str]:
    if cfg.training.gpu_hours_per_month is not None:
        return cfg.training.gpu_hours_per_month, "config (training.gpu_hours_per_month)"
    if cfg.measured != cfg.fleet:
        return 0.0, "none: the ledger is the measured fleet's, not this fleet's; set training"
    hours = sum(
        r["gpu_hours"] for r in rows if r["kind"] == "finetune" and r["accelerator_type"] == gpu
    )
    return hours / days * DAYS_PER_MONTH, f"the ledger's finetune {gpu}-hours over {days:g} days"


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
        problem = Problem("ledger", _redact(ledger.url), f"cannot be read ({type(exc).__name__}: "
                          f"{exc})", "check ONPREM_LEDGER_URL / ONPREM_ROOT")  # fmt: skip
        raise ConfigError("inputs", [problem]) from None
    ledger_types = {str(r["accelerator_type"]) for r in rows}
    problems += check_models(ledger_types, cfg.equivalence, "ledger accelerator_type")
    bench, bench_problems = _bench(cfg, notes)
    problems += bench_problems
    if problems:
        raise ConfigError("inputs", problems)

    book = resolve_prices(
        cfg.pricing, _candidates(cfg, [*fleets.values(), measured]), cfg.region,
        snapshot=cfg.snapshot_path(), cache_dir=cfg.cache_path(), regions=cfg.regions,
        puller=functools.partial(puller, block_days=cfg.block_days),
    )  # fmt: skip
    picks: dict[str, list[Pick | None]] = {}
    rates: dict[str, list[demand.Rate]] = {}
    unit_rates: dict[str, tuple[str, float]] = {}
    fleet_bench = bench if cfg.bench and cfg.measured == cfg.fleet else None
    for name, inv in fleets.items():
        sc = cfg.scenario(name)
        if sc is None:
            continue
        picks[name], rates[name] = [], []
        for i, (gpu, r) in enumerate(sc.replicas.items()):
            try:
                picks[name].append(cheapest_instance(Shape(gpu, r.gpus, _memory(inv, gpu)), book,
                                                     cfg.region, cfg.equivalence))  # fmt: skip
            except EquivalenceError as exc:
                problems += exc.problems
            measured_here = fleet_bench if (name == cfg.fleet and i == 0) else None
            rates[name].append(demand.rate(gpu, r.gpus, sc.params_b, r.tokens_per_s,
                                           measured_here, cfg.workload.latency_p95_s))  # fmt: skip
    for t in sorted({n.accelerator_type for n in measured.nodes} | ledger_types):
        try:
            unit_rates[t] = unit_on_demand(t, book, cfg.region, cfg.equivalence, cfg.cpu_instance,
                                           _memory(measured, t) or 0.0)  # fmt: skip
        except EquivalenceError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("inputs", problems)
    if book.fallback:
        notes.append(f"prices: {book.fallback}")
    primary = next(iter(cfg.scenario(cfg.fleet).replicas))
    gpu_h, how = _training(cfg, rows, primary, period.hours / 24)
    problems = cfg.range_problems(cfg.point(fleets[cfg.fleet].site, gpu_h))
    if problems:  # the ledger's training hours may fall outside their range
        raise ConfigError("inputs", problems)
    return Inputs(
        cfg=cfg, fleets=fleets, measured=measured, measured_site=msite, period=period, rows=rows,
        ledger_url=_redact(ledger.url), book=book, picks=picks, rates=rates,
        unit_rates=unit_rates, training_gpu_hours=gpu_h, training_source=how, bench=bench,
        sources=inventory_sources(Path(cfg.inventory)), now=now, notes=notes,
        command=command or "python -m jobs.cost_report --config <config>",
    )  # fmt: skip
