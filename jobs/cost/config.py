"""``CostConfig``: the schema of ``python -m jobs.cost_report`` configs.

Two views of the same question, "is owning cheaper than renting?":

- **planned** (modelled): ``fleet`` and every fleet of ``scenarios`` run for ``horizon_months``
  at ``target_utilization``, against every way AWS rents the same GPUs and against the cloud
  API the team pays per token (``api``), at each scenario's planned throughput;
- **measured**: what the ledger recorded on ``measured_fleet`` over the period, against what that
  fleet cost busy or idle.

Every check that can fail is made here or in ``run.preflight``, before any work.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cluster import paths
from cluster.config import ConfigError, JobConfig, Problem, folder_name
from cluster.inventory import CPU_TYPE, Site, fleets, load_inventory
from jobs.cost.equivalence import DEFAULT_CPU_INSTANCE, check_models
from jobs.cost.prices import load_price_book, newest_book

PRICING_DIR = Path("data/pricing")
_INSTANCE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")


class CapacityConfig(BaseModel):
    """The load to plan for, and what one replica is (the benchmarked one)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_s: float | None = Field(default=None, gt=0, description="load today, req/s")
    tokens_per_day: float | None = Field(
        default=None, gt=0, description="load today as output tokens per day (instead of req/s)"
    )
    slo_p95_s: float = Field(default=10.0, gt=0, description="p95 end-to-end latency target, s")
    growth_pct_per_month: float = Field(
        default=5.0, ge=-50, le=200, description="load growth per month, %"
    )
    headroom: float = Field(
        default=0.8, gt=0, le=1, description="plan each replica at this share of its rate"
    )
    accelerator_type: str = Field(
        default=CPU_TYPE,
        description="what one replica runs on (as in the benchmark): a GPU model or CPU",
    )
    gpus_per_replica: int = Field(default=0, ge=0, description="GPUs one replica holds")
    cpus_per_replica: float = Field(default=2, gt=0, description="CPUs one replica holds")
    bench_replicas: int = Field(
        default=1, ge=1, description="replicas that served the benchmark (its rate is divided)"
    )

    @model_validator(mode="after")
    def _one_load(self) -> CapacityConfig:
        if (self.requests_per_s is None) == (self.tokens_per_day is None):
            raise ValueError(
                "give exactly one of requests_per_s and tokens_per_day. Fix: e.g. "
                "capacity.requests_per_s=2"
            )
        gpu = self.accelerator_type != CPU_TYPE
        if gpu and self.gpus_per_replica < 1:
            raise ValueError(
                f"a replica on {self.accelerator_type} needs gpus_per_replica >= 1. "
                "Fix: set capacity.gpus_per_replica"
            )
        if not gpu and self.gpus_per_replica:
            raise ValueError(
                "a CPU replica holds no GPUs. Fix: set capacity.gpus_per_replica=0 or "
                "capacity.accelerator_type to a GPU model"
            )
        return self

    @property
    def units_per_replica(self) -> float:
        return float(self.gpus_per_replica) if self.gpus_per_replica else self.cpus_per_replica


class ApiPrice(BaseModel):
    """What a cloud model API charges, USD per 1M tokens (the team's bill today)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the API model, e.g. fine-tuned gpt-4o")
    input_usd_per_1m: float = Field(ge=0, description="prompt tokens, USD per 1M")
    output_usd_per_1m: float = Field(ge=0, description="generated tokens, USD per 1M")
    training_usd_per_1m: float | None = Field(default=None, ge=0, description="fine-tuning tokens")
    source: str = Field(min_length=1, description="where the prices come from, and their date")

    def per_1m_output(self, prompt_tokens: int, output_tokens: int) -> float:
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


class Scenario(BaseModel):
    """A fleet of the inventory and the model it would serve and tune, with planned rates."""

    model_config = ConfigDict(extra="forbid")

    fleet: str = Field(description="a fleet of the inventory")
    model: str = Field(min_length=1, description="what it serves, e.g. 8B-class, bf16")
    params_b: float = Field(gt=0, le=2000, description="parameters, billions (training FLOPs)")
    serve_tokens_per_s: dict[str, float] = Field(
        description="planned output tokens/s per GPU, by GPU model (a GPU model left out serves "
        "nothing of this model)"
    )
    train_mfu: float = Field(
        default=0.35, gt=0, le=1, description="planned MFU of LoRA fine-tuning (training tokens/s)"
    )
    source: str = Field(min_length=1, description="where the planned rates come from")


class CostConfig(JobConfig):
    """``python -m jobs.cost_report``: on-prem vs AWS cost, savings, break-even, capacity."""

    name: str | None = Field(
        default=None, description="report folder reports/cost/<name>/ (default: today's date)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else folder_name(v)

    inventory: str = Field(default="cluster/inventory.yaml", description="node inventory YAML")
    fleet: str = Field(default="onprem", description="fleet to plan (the planned view)")
    measured_fleet: str | None = Field(
        default=None,
        description="fleet the ledger's usage and the benchmark ran on (default: fleet)",
    )
    measured_site: dict[str, float] = Field(
        default_factory=dict,
        description="site figures that differ for measured_fleet, e.g. {pue: 1.0}",
    )
    period_days: float = Field(default=30, gt=0, le=3660, description="ledger period, days")
    since: dt.datetime | None = Field(default=None, description="period start (UTC)")
    until: dt.datetime | None = Field(default=None, description="period end (UTC; default now)")
    pricing: Literal["live", "snapshot", "cache"] = Field(
        default="snapshot",
        description="live (boto3; falls back to cache, then snapshot), cache, or snapshot",
    )
    snapshot: str | None = Field(
        default=None, description="price snapshot JSON (default: newest data/pricing/aws-*.json)"
    )
    cache_dir: str | None = Field(
        default=None, description="where live pulls are cached (default: <state>/pricing-cache)"
    )
    region: str = Field(default="us-east-1", description="AWS region the report prices in")
    regions: list[str] = Field(
        default_factory=list, description="more regions to pull and cache with --pricing live"
    )
    equivalence: dict[str, str] = Field(
        default_factory=dict,
        description="GPU model (or CPU) -> AWS instance type, overriding the defaults",
    )
    cpu_instance: str = Field(
        default=DEFAULT_CPU_INSTANCE, description="general-purpose instance pricing a vCPU"
    )
    target_utilization: float = Field(
        default=0.6, gt=0, le=1, description="planned share of fleet hours that are busy"
    )
    horizon_months: int = Field(default=36, ge=1, le=120, description="months to compare")
    bench: str | None = Field(
        default=None,
        description="bench.json for latency and throughput (default: newest under "
        "reports/bench; none -> 'not measured')",
    )
    newest_bench: bool = Field(
        default=True,
        description="without `bench`, use the newest reports/bench/*/bench.json; set false when "
        "that benchmark did not run on measured_fleet",
    )
    capacity: CapacityConfig | None = Field(
        default=None, description="load to plan for; omit to skip the capacity plan"
    )
    prompt_tokens: int = Field(default=512, ge=1, description="typical prompt length, tokens")
    output_tokens: int = Field(default=256, ge=1, description="typical answer length, tokens")
    block_days: int = Field(
        default=7, ge=1, le=182, description="Capacity Block length priced with pricing=live, days"
    )
    api: list[ApiPrice] = Field(
        default_factory=lambda: list(DEFAULT_API),
        min_length=1,
        description="cloud API prices to compare per token; the first is what the team pays",
    )
    scenarios: list[Scenario] = Field(
        default_factory=list,
        description="fleets side by side with their planned throughput (one for `fleet` gives "
        "the Results table its cost per 1M tokens)",
    )

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

    def snapshot_path(self) -> Path:
        return Path(self.snapshot) if self.snapshot else (newest_book(PRICING_DIR) or PRICING_DIR)

    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else paths.state_dir() / "pricing-cache"

    def bench_path(self) -> Path | None:
        """The explicit bench file: as given if it exists (cwd), else under the platform root."""
        if not self.bench:
            return None
        given = Path(self.bench).expanduser()
        return given if given.is_file() else paths.resolve(given)

    # -- checks ------------------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        out += self._fleet_problems()
        if self.since and self.until and self.since >= self.until:
            out.append(Problem("since", str(self.since), f"must be before until ({self.until})"))
        figures = sorted(set(Site.model_fields) - {"name", "currency"})
        bad_site = sorted(set(self.measured_site) - set(figures))
        if bad_site:
            out.append(
                Problem(
                    "measured_site",
                    bad_site,
                    "are not numeric site figures",
                    f"use keys of the inventory's site: {', '.join(figures)}",
                )
            )
        for model, itype in sorted({**self.equivalence, "cpu_instance": self.cpu_instance}.items()):
            if not _INSTANCE_RE.match(itype):
                field = "cpu_instance" if model == "cpu_instance" else f"equivalence.{model}"
                out.append(Problem(field, itype, "is not an EC2 instance type", "e.g. p5.48xlarge"))
        out += self._snapshot_problems()
        bench = self.bench_path()
        if bench is not None and not bench.is_file():
            out.append(
                Problem(
                    "bench",
                    self.bench,
                    f"no such file (looked in {Path.cwd()} and {paths.root()})",
                    "give the path of a bench.json written by jobs.bench_serve, or omit "
                    "`bench` to use the newest one under reports/bench",
                )
            )
        return out

    def _fleet_problems(self) -> list[Problem]:
        inv = Path(self.inventory)
        if not inv.is_file():
            return [Problem("inventory", self.inventory, "no such file", "give an inventory YAML")]
        known = fleets(inv)
        out = []
        names = {"fleet": self.fleet}
        if self.measured != self.fleet:
            names["measured_fleet"] = self.measured
        names.update({f"scenarios.{i}.fleet": s.fleet for i, s in enumerate(self.scenarios)})
        for field, name in names.items():
            if name not in known:
                out.append(
                    Problem(
                        field,
                        name,
                        f"is not a fleet of {self.inventory}",
                        f"use one of: {', '.join(known) or '(none defined)'}",
                    )
                )
        if out:
            return out
        first: dict[str, str] = {}  # fleet -> the first field naming it
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
                for gpu in sorted(set(sc.serve_tokens_per_s) - models) if sc.fleet == name else ():
                    hint = difflib.get_close_matches(gpu, models, n=1)
                    out.append(
                        Problem(
                            f"scenarios.{i}.serve_tokens_per_s",
                            gpu,
                            f"is not a GPU model of fleet {name!r} ({', '.join(sorted(models))})",
                            f"did you mean {hint[0]}?" if hint else "name a GPU model it has",
                        )
                    )
            if name == self.measured and self.capacity:
                accel = self.capacity.accelerator_type
                if accel not in models:
                    out.append(
                        Problem(
                            "capacity.accelerator_type",
                            accel,
                            f"is not in the measured fleet {name!r} (it has: "
                            f"{', '.join(sorted(models))})",
                            "plan with the accelerator the benchmark ran on",
                        )
                    )
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
