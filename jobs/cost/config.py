"""``CostConfig``: the schema of ``python -m jobs.cost_report`` configs.

The question: for the team's demand (``workload``), is it cheaper to pay the API per token, to
rent GPUs from AWS (and how), or to own the fleet of the inventory? Each ``scenarios`` entry is a
fleet and the model it would serve (its replica shapes); the first for ``fleet`` is the
headline. Every assumed input has a range (``ranges``) for the Monte Carlo run and the tornado.
The measured view prices what the ledger recorded on ``measured_fleet`` over the period.

Every check that can fail is made here or in ``run.preflight``, before any work.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cluster import paths
from cluster.config import ConfigError, FolderName, JobConfig, Problem
from cluster.inventory import Site, fleets, load_inventory
from jobs.cost.instances import DEFAULT_CPU_INSTANCE, check_models
from jobs.cost.prices import load_price_book, newest_book
from jobs.cost.tco import site_x

PRICING_DIR = Path("data/pricing")
_INSTANCE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
BYTES_PER_PARAM, KV_SLACK = 2.0, 1.1  # bf16 weights, and 10% for the KV cache and activations
MULTIPLIERS = ("throughput_factor", "capex_factor", "commitment_price_factor",
               "capacity_block_price_factor")  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Workload(_Strict):
    """The team's demand: what the API serves today and how it grows."""

    tokens_per_day: float = Field(gt=0, description="output tokens a day today (the day's mean)")
    prompt_tokens: int = Field(ge=1, description="typical prompt, tokens (prices the API's input)")
    output_tokens: int = Field(ge=1, description="typical answer, tokens")
    peak_to_mean: float = Field(
        default=1.5, ge=1, le=24, description="busiest hour's load / the day's mean"
    )
    growth_pct_per_month: float = Field(default=2.0, ge=-50, le=100, description="%/month")
    latency_p95_s: float = Field(
        default=10.0, gt=0, description="p95 end-to-end latency target (picks the measured rate)"
    )
    headroom: float = Field(
        default=0.8, gt=0, le=1, description="plan each replica at this share of its rate"
    )
    spares: int = Field(default=1, ge=0, le=16, description="replicas held back: N+1 is 1")


class Replica(_Strict):
    """One replica of the model on a GPU model."""

    gpus: int = Field(ge=1, le=64, description="GPUs per replica (tensor parallel size)")
    tokens_per_s: float | None = Field(
        default=None, gt=0, description="output tok/s per GPU if known; checked against the "
        "bandwidth derivation and corrected when more than 10% off",
    )  # fmt: skip


class ApiPrice(_Strict):
    """What a cloud model API charges, USD per 1M tokens (the team's bill today)."""

    name: str = Field(min_length=1, description="the API model, e.g. fine-tuned gpt-4o")
    input_usd_per_1m: float = Field(ge=0, description="list price of prompt tokens, USD per 1M")
    output_usd_per_1m: float = Field(ge=0, description="list price of output tokens, USD per 1M")
    training_usd_per_1m: float | None = Field(default=None, ge=0, description="fine-tuning")
    source: str = Field(min_length=1, description="where the prices come from, and their date")

    def per_1m_output(self, prompt_tokens: float, output_tokens: float) -> float:
        """USD per 1M generated tokens with their prompts: output + prompt/output x input."""
        return self.output_usd_per_1m + prompt_tokens / output_tokens * self.input_usd_per_1m


_OPENAI = (
    "OpenAI list prices for fine-tuned models (since 2024; reported unchanged in April 2026 by "
    "tokenmix.ai's pricing guide; project field notes)"
)
DEFAULT_API = [  # name, input, output, training: USD per 1M tokens
    ApiPrice(name=n, input_usd_per_1m=i, output_usd_per_1m=o, training_usd_per_1m=t, source=_OPENAI)
    for n, i, o, t in (
        ("fine-tuned gpt-4o", 3.75, 15.0, 25.0),
        ("fine-tuned gpt-4o-mini", 0.30, 1.20, 3.00),
    )
]


class Scenario(_Strict):
    """A fleet of the inventory and the model it would serve, as replica shapes per GPU."""

    fleet: str = Field(description="a fleet of the inventory")
    model: str = Field(min_length=1, description="what it serves, e.g. 70B-class, bf16")
    params_b: float = Field(gt=0, le=2000, description="parameters, billions")
    replicas: dict[str, Replica] = Field(
        min_length=1, description="GPU model -> replica shape; the first is the one bought more of"
    )
    source: str = Field(min_length=1, description="where the throughput figures come from")


class Training(_Strict):
    gpu_hours_per_month: float | None = Field(
        default=None, ge=0, description="fine-tuning GPU-hours a month (default: the ledger's)"
    )
    spot_overhead_pct: float = Field(
        default=15.0, ge=0, le=300, description="hours redone after spot interruptions, %"
    )


class Cloud(_Strict):
    storage_gb: float = Field(default=2000, ge=0, description="EBS gp3 for models, checkpoints")
    storage_usd_per_gb_month: float = Field(default=0.08, ge=0, description="gp3, USD/GB-month")
    egress_bytes_per_token: float = Field(default=200, ge=0, description="streamed bytes/token")
    egress_usd_per_gb: float = Field(default=0.09, ge=0, description="internet egress, USD/GB")
    source: str = Field(
        default="gp3 $0.08/GB-month (menuvis1-blip.github.io, 'Amazon EBS', 2026-02-24); egress "
        "$0.09/GB for the first 10 TB (leanopstech.com, 'AWS Data Transfer Pricing in 2026', "
        "2026-04-27); AWS Business Support tiers (aws.amazon.com/premiumsupport/pricing)",
        description="where the cloud extras come from",
    )


class Finance(_Strict):
    discount_rate_pct: float | None = Field(
        default=None, ge=0, le=50, description="NPV rate, %/year (default: site cost_of_capital)"
    )
    failure_pct_per_year: float = Field(
        default=2.0, ge=0, le=50, description="repairs and replaced parts, % of capex a year"
    )


class MonteCarlo(_Strict):
    samples: int = Field(default=3000, ge=10, le=100_000, description="draws of the inputs")
    seed: int = Field(default=23, description="random seed: the same seed, the same run")


class CostConfig(JobConfig):
    """``python -m jobs.cost_report``: API vs renting vs owning for the team's demand."""

    name: FolderName | None = Field(
        default=None, description="report folder reports/cost/<name>/ (default: today's date)"
    )
    inventory: str = Field(default="cluster/inventory.yaml", description="node inventory YAML")
    fleet: str = Field(default="onprem", description="fleet to plan (the headline)")
    measured_fleet: str | None = Field(
        default=None,
        description="fleet the ledger's usage and the benchmark ran on (default: fleet)",
    )
    measured_site: dict[str, float] = Field(
        default_factory=dict, description="site figures that differ for measured_fleet"
    )
    period_days: float = Field(default=30, gt=0, le=3660, description="ledger period, days")
    since: dt.datetime | None = Field(default=None, description="period start (UTC)")
    until: dt.datetime | None = Field(default=None, description="period end (UTC; default now)")
    pricing: Literal["live", "snapshot", "cache"] = Field(
        default="snapshot", description="live (boto3; falls back to cache, then snapshot)"
    )
    snapshot: str | None = Field(default=None, description="price snapshot JSON (default: newest)")
    cache_dir: str | None = Field(default=None, description="where live pulls are cached")
    region: str = Field(default="us-east-1", description="AWS region the report prices in")
    regions: list[str] = Field(default_factory=list, description="more regions to pull live")
    equivalence: dict[str, str] = Field(
        default_factory=dict, description="GPU model (or CPU) -> AWS instance, instead of the "
        "cheapest that holds the replica",
    )  # fmt: skip
    cpu_instance: str = Field(default=DEFAULT_CPU_INSTANCE, description="prices a vCPU")
    horizon_months: int = Field(default=36, ge=1, le=120, description="months to compare")
    bench: str | None = Field(
        default=None, description="bench.json of the planned fleet: measured throughput"
    )
    newest_bench: bool = Field(
        default=True, description="without `bench`, the newest reports/bench/*/bench.json "
        "gives the measured fleet's latency",
    )  # fmt: skip
    block_days: int = Field(default=7, ge=1, le=182, description="block priced by pricing=live")
    workload: Workload
    api: list[ApiPrice] = Field(
        default_factory=lambda: list(DEFAULT_API), min_length=1,
        description="cloud API prices; the first is what the team pays",
    )  # fmt: skip
    scenarios: list[Scenario] = Field(min_length=1, description="fleets and the models they serve")
    training: Training = Field(default_factory=Training)
    cloud: Cloud = Field(default_factory=Cloud)
    finance: Finance = Field(default_factory=Finance)
    ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="input -> [low, high] for the Monte Carlo run"
    )
    monte_carlo: MonteCarlo = Field(default_factory=MonteCarlo)

    @field_validator("since", "until")
    @classmethod
    def _naive_utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        if v is not None and v.tzinfo is not None:
            return v.astimezone(dt.UTC).replace(tzinfo=None)  # the ledger stores naive UTC
        return v

    # -- derived -----------------------------------------------------------------------------
    @property
    def measured(self) -> str:
        return self.measured_fleet or self.fleet

    @property
    def fleets(self) -> list[str]:
        """The headline fleet, then every other scenario's."""
        return list(dict.fromkeys([self.fleet, *(s.fleet for s in self.scenarios)]))

    def scenario(self, fleet: str) -> Scenario | None:
        return next((s for s in self.scenarios if s.fleet == fleet), None)

    def point(self, site: Site, training_gpu_hours: float | None = None) -> dict[str, float]:
        """Every model input at its configured value (the names ``ranges`` uses)."""
        w = self.workload
        return site_x(site) | dict.fromkeys(MULTIPLIERS, 1.0) | {
            "tokens_per_day": w.tokens_per_day,
            "growth_pct_per_month": w.growth_pct_per_month,
            "peak_to_mean": w.peak_to_mean,
            "prompt_tokens": float(w.prompt_tokens),
            "failure_pct_per_year": self.finance.failure_pct_per_year,
            "discount_rate_pct": self.finance.discount_rate_pct
            if self.finance.discount_rate_pct is not None
            else site.cost_of_capital_pct,
            "storage_gb": self.cloud.storage_gb,
            "egress_bytes_per_token": self.cloud.egress_bytes_per_token,
            "training_gpu_hours_per_month": training_gpu_hours
            if training_gpu_hours is not None
            else (self.training.gpu_hours_per_month or 0.0),
            "spot_overhead_pct": self.training.spot_overhead_pct,
        }  # fmt: skip

    def snapshot_path(self) -> Path:
        return Path(self.snapshot) if self.snapshot else (newest_book(PRICING_DIR) or PRICING_DIR)

    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else paths.state_dir() / "pricing-cache"

    def bench_path(self) -> Path | None:
        if not self.bench:
            return None
        given = Path(self.bench).expanduser()
        return given if given.is_file() else paths.resolve(given)

    # -- checks ------------------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        out: list[Problem] = self._fleet_problems()
        if self.since and self.until and self.since >= self.until:
            out.append(Problem("since", str(self.since), f"must be before until ({self.until})"))
        figures = sorted(set(Site.model_fields) - {"name", "currency"})
        bad_site = sorted(set(self.measured_site) - set(figures))
        if bad_site:
            fix = f"use keys of the inventory's site: {', '.join(figures)}"
            out.append(Problem("measured_site", bad_site, "are not numeric site figures", fix))
        for model, itype in sorted({**self.equivalence, "cpu_instance": self.cpu_instance}.items()):
            if not _INSTANCE_RE.match(itype):
                field = "cpu_instance" if model == "cpu_instance" else f"equivalence.{model}"
                out.append(Problem(field, itype, "is not an EC2 instance type", "e.g. p5.48xlarge"))
        for i, s in enumerate(self.scenarios):
            need = s.params_b * BYTES_PER_PARAM * KV_SLACK
            for gpu, r in s.replicas.items():
                mem = self._gpu_memory(s.fleet, gpu)
                if mem and r.gpus * mem < need:
                    fix = f"give at least {-(-need // mem):.0f} GPUs per replica"
                    out.append(Problem(
                        f"scenarios.{i}.replicas.{gpu}.gpus", r.gpus,
                        f"{r.gpus} x {mem:g} GB cannot hold {s.params_b:g}B in bf16 "
                        f"({need:.0f} GB with 10% for the KV cache)", fix,
                    ))  # fmt: skip
        out += self._snapshot_problems()
        bench = self.bench_path()
        if bench is not None and not bench.is_file():
            out.append(Problem(
                "bench", self.bench, f"no such file (looked in {Path.cwd()} and {paths.root()})",
                "give the path of a bench.json written by jobs.bench_serve, or omit `bench`",
            ))  # fmt: skip
        return out

    def _gpu_memory(self, fleet: str, gpu: str) -> float | None:
        try:
            inv = load_inventory(self.inventory, fleet)
        except ConfigError:
            return None
        return next((n.gpu.memory_gb for n in inv.nodes if n.gpu and n.gpu.model == gpu), None)

    def range_problems(self, point: dict[str, float]) -> list[Problem]:
        """Every input needs [low, high] with low <= value <= high; unknown names are refused."""
        out = []
        for key in sorted(set(self.ranges) - set(point)):
            hint = difflib.get_close_matches(key, point, n=1)
            fix = f"did you mean {hint[0]}?" if hint else f"inputs: {', '.join(sorted(point))}"
            out.append(Problem(f"ranges.{key}", self.ranges[key], "is not an input", fix))
        for key in sorted(point):
            if key not in self.ranges:
                out.append(Problem("ranges", key, "has no range (every input needs one)",
                                   f"add `{key}: [low, high]` around {point[key]:g}"))  # fmt: skip
                continue
            lo, hi = self.ranges[key]
            if lo > hi:
                out.append(Problem(f"ranges.{key}", [lo, hi], "min is above max",
                                   f"write it [low, high]: [{hi:g}, {lo:g}]"))  # fmt: skip
            elif not lo <= point[key] <= hi:
                out.append(Problem(f"ranges.{key}", [lo, hi],
                                   f"leaves out its value {point[key]:g}",
                                   "widen the range, or change the value"))  # fmt: skip
        return out

    def _fleet_problems(self) -> list[Problem]:
        inv = Path(self.inventory)
        if not inv.is_file():
            return [Problem("inventory", self.inventory, "no such file", "give an inventory YAML")]
        known = fleets(inv)
        names = {"fleet": self.fleet}
        if self.measured != self.fleet:
            names["measured_fleet"] = self.measured
        names.update({f"scenarios.{i}.fleet": s.fleet for i, s in enumerate(self.scenarios)})
        out = [
            Problem(field, name, f"is not a fleet of {self.inventory}",
                    f"use one of: {', '.join(known) or '(none defined)'}")
            for field, name in names.items() if name not in known
        ]  # fmt: skip
        if out:
            return out
        if self.scenario(self.fleet) is None:
            out.append(Problem("scenarios", [s.fleet for s in self.scenarios],
                               f"has no entry for fleet {self.fleet!r}",
                               "add one: the model it serves and its replica shapes"))  # fmt: skip
        first: dict[str, str] = {}
        for field, name in names.items():
            first.setdefault(name, field)
        for name, field in first.items():
            try:
                fleet = load_inventory(inv, name)
            except ConfigError as exc:
                out += [
                    Problem(f"{field} ({name})", p.value, p.message, p.fix) for p in exc.problems
                ]
                continue
            models = {n.accelerator_type for n in fleet.nodes}
            out += check_models(models, self.equivalence, f"{field} {name}: gpu.model")
            for i, sc in enumerate(self.scenarios):
                for gpu in sorted(set(sc.replicas) - models) if sc.fleet == name else ():
                    hint = difflib.get_close_matches(gpu, models, n=1)
                    out.append(Problem(
                        f"scenarios.{i}.replicas", gpu,
                        f"is not a GPU model of fleet {name!r} ({', '.join(sorted(models))})",
                        f"did you mean {hint[0]}?" if hint else "name a GPU model it has",
                    ))  # fmt: skip
            if name == self.fleet:
                out += self.range_problems(self.point(fleet.site))
        return out

    def _snapshot_problems(self) -> list[Problem]:
        path = self.snapshot_path()
        if not path.is_file():
            fix = "give snapshot=data/pricing/aws-<date>.json (the shipped one)"
            return [Problem("snapshot", str(path), "no price snapshot found", fix)]
        try:
            book = load_price_book(path, "snapshot")
        except ConfigError as exc:
            fix = "restore the shipped snapshot from git"
            return [Problem(f"snapshot ({path}): {p.field}", p.value, p.message, p.fix or fix)
                    for p in exc.problems]  # fmt: skip
        if self.pricing == "snapshot" and self.region not in book.regions:
            fix = f"use one of: {', '.join(book.regions)}, or pricing=live"
            return [Problem("region", self.region, f"is not in the snapshot {path}", fix)]
        return []
