"""The AWS price book: every way AWS rents an instance type, per region, each price with its
source and date.

One JSON format serves the shipped snapshot (``data/pricing/aws-<date>.json``), the cache of
live pulls (``<state>/pricing-cache/aws-<date>.json``) and the live pull itself::

    book = load_price_book("data/pricing/aws-2026-08.json", source="snapshot")
    book.get("us-east-1", "p5.48xlarge").prices["on-demand"].hourly_usd     # 55.04

The options (:data:`OPTIONS`) and how each is paid:

- ``on-demand``: per hour used; ``spot``: per hour used, reclaimable at two minutes' notice;
- ``Capacity Block``: whole days booked ahead at an effective hourly rate, paid up front;
- ``RI``, ``EC2 Instance SP``, ``Compute SP`` with a 1- or 3-year term and a payment option:
  commitments, paid for every hour of the term, used or not: ``upfront_usd`` at the start of
  each term plus ``hourly_usd`` (how each is billed: ``jobs.cost.billing``).

Every figure names its source and date; one derived rather than published says how
(``estimate``), and the report marks it. A figure no source gives is absent and the report names
the command that fills it (``pricing=live``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cluster.config import ConfigError, Problem, problems_from_validation

PAYMENTS = ("No Upfront", "Partial Upfront", "All Upfront")
COMMITMENTS = ("RI", "EC2 Instance SP", "Compute SP")
OPTIONS = (
    "on-demand",
    "spot",
    "Capacity Block",
    *(f"{c} {t} {p}" for c in COMMITMENTS for t in ("1yr", "3yr") for p in PAYMENTS),
)
FAMILIES = {  # how the report names a family of options, and what fills it
    "RI": "Reserved Instances (standard, 1yr/3yr, No/Partial/All Upfront)",
    "EC2 Instance SP": "EC2 Instance Savings Plans (1yr/3yr, No/Partial/All Upfront)",
    "Compute SP": "Compute Savings Plans (1yr/3yr, No/Partial/All Upfront)",
    "Capacity Block": "EC2 Capacity Blocks for ML",
    "spot": "spot",
    "on-demand": "on-demand",
}
Source = Literal["live", "cache", "snapshot"]
Option = Literal[OPTIONS]


def family(option: str) -> str:
    return next(f for f in FAMILIES if option.startswith(f))


def term_years(option: str) -> int | None:
    """``"RI 3yr All Upfront"`` -> 3; None for options paid per hour used."""
    match = re.search(r" (\d)yr ", option)
    return int(match.group(1)) if match else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """One way to rent one instance (USD per instance), where the figure came from and when."""

    hourly_usd: float = Field(ge=0, description="per hour used, or per hour of the term")
    upfront_usd: float = Field(default=0.0, ge=0, description="at the start of each term")
    source: str = Field(description="key into the book's sources")
    as_of: str = Field(description="when the figure was observed or published")
    note: str | None = None
    estimate: str | None = Field(
        default=None, description="how the figure was derived, when it is not a published price"
    )


class GpuFacts(_Strict):
    """What ``ec2.describe_instance_types`` says about the GPUs of an instance type."""

    name: str = Field(description="GPU name as AWS gives it (H100, A100, L40S, ...)")
    count: int = Field(ge=1)
    memory_mib: int = Field(ge=0, description="memory per GPU, MiB")
    interconnect: Literal["nvswitch", "pcie"] = Field(
        default="pcie", description="how the GPUs of one instance talk (tensor parallelism)"
    )


class InstancePrice(_Strict):
    """An instance type in a region: its size and every price known for it."""

    vcpus: int | None = Field(default=None, ge=1)
    memory_mib: int | None = Field(default=None, ge=0)
    gpu: GpuFacts | None = None
    facts_source: str | None = Field(default=None, description="key of the vCPU/GPU facts' source")
    prices: dict[Option, Price] = Field(default_factory=dict, description="option -> price")


class PriceBook(_Strict):
    """Every price the report may use, and its provenance."""

    source: Source = Field(description="live pull, cache of a live pull, or the shipped snapshot")
    as_of: str = Field(description="when the on-demand prices were observed")
    sources: dict[str, str] = Field(description="key -> where the figures came from")
    notes: list[str] = Field(default_factory=list)
    regions: dict[str, dict[str, InstancePrice]] = Field(min_length=1)
    path: str | None = Field(default=None, description="file it was read from (not stored)")
    fallback: str | None = Field(
        default=None, description="why this book is used instead of the one asked for"
    )

    def get(self, region: str, instance_type: str) -> InstancePrice | None:
        return self.regions.get(region, {}).get(instance_type)

    def instance_types(self, region: str) -> list[str]:
        return sorted(self.regions.get(region, {}))

    def label(self) -> str:
        """One line for the report: which prices, from when, and why."""
        where = f" ({self.path})" if self.path else ""
        text = f"{self.source} prices as of {self.as_of}{where}"
        return f"{text}; {self.fallback}" if self.fallback else text


def _unknown_sources(book: PriceBook) -> list[Problem]:
    """Every price and fact must name a source the book explains."""
    return [
        Problem(f"regions.{region}.{itype}.{where}", key, "is not a key of the book's sources",
                f"use one of: {', '.join(book.sources)}")
        for region, types in book.regions.items()
        for itype, inst in types.items()
        for where, key in [("facts_source", inst.facts_source),
                           *((f"prices.{o}.source", p.source) for o, p in inst.prices.items())]
        if key is not None and key not in book.sources
    ]  # fmt: skip


def load_price_book(path: str | Path, source: Source) -> PriceBook:
    """Read a price book; a malformed file raises ConfigError naming each bad field."""
    path = Path(path)
    field = "snapshot" if source == "snapshot" else "cache"
    if not path.is_file():
        fix = "give the path of a price book JSON (data/pricing/aws-<date>.json)"
        raise ConfigError(str(path), [Problem(field, str(path), "no such file", fix)])
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(
            str(path), [Problem("(file)", str(path), f"is not valid JSON ({exc})", "restore it")]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), [Problem("(file)", type(data).__name__, "must be an object")])
    try:
        book = PriceBook.model_validate({**data, "source": source, "path": str(path)})
    except ValidationError as err:
        raise ConfigError(str(path), problems_from_validation(PriceBook, err)) from None
    problems = _unknown_sources(book)
    if problems:
        raise ConfigError(str(path), problems)
    return book


def save_price_book(book: PriceBook, path: Path) -> Path:
    """Write a book as JSON (atomically), without the in-memory fields."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = book.model_dump(exclude={"path", "fallback", "source"})
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path


def newest_book(folder: Path) -> Path | None:
    """The newest ``aws-*.json`` in a folder (names sort by date), or None."""
    found = sorted(folder.glob("aws-*.json")) if folder.is_dir() else []
    return found[-1] if found else None
