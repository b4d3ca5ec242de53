"""The AWS price book: on-demand, reserved and spot prices plus GPU facts per instance type and
region, with where every figure came from and when.

One JSON format serves the shipped snapshot (``data/pricing/aws-<date>.json``), the cache of
live pulls (``<state>/pricing-cache/aws-<date>.json``) and the live pull itself::

    book = load_price_book("data/pricing/aws-2026-08.json", source="snapshot")
    book.get("us-east-1", "p5.48xlarge").on_demand_usd     # 55.04

A figure that is not known is absent (``null``), never guessed: ``reserved`` is empty and
``spot`` is null unless a source gave them, and the report says "not in snapshot".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cluster.config import ConfigError, Problem, problems_from_validation

HOURS_PER_YEAR = 8760
# Reserved terms as the Price List names them: LeaseContractLength + PurchaseOption.
TERMS = (
    "1yr No Upfront",
    "1yr Partial Upfront",
    "1yr All Upfront",
    "3yr No Upfront",
    "3yr Partial Upfront",
    "3yr All Upfront",
)
Source = Literal["live", "cache", "snapshot"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reserved(_Strict):
    """A standard reserved instance for one term and payment option."""

    upfront_usd: float = Field(ge=0, description="paid once at the start of the term")
    hourly_usd: float = Field(ge=0, description="paid every hour of the term, used or not")
    effective_hourly_usd: float = Field(ge=0, description="upfront / hours in term + hourly")


class Spot(_Strict):
    """Spot price across availability zones (the latest price in each zone)."""

    min_usd: float = Field(ge=0)
    median_usd: float = Field(ge=0)
    zones: dict[str, float] = Field(default_factory=dict, description="zone -> USD/hour")
    as_of: str = Field(description="when the spot prices were observed")
    source: str = Field(description="key into the book's sources")


class GpuFacts(_Strict):
    """What ``ec2.describe_instance_types`` says about the GPUs of an instance type."""

    name: str = Field(description="GPU name as AWS gives it (H100, A100, L40S, ...)")
    count: int = Field(ge=1)
    memory_mib: int = Field(ge=0, description="memory per GPU, MiB")


class InstancePrice(_Strict):
    """Prices (USD per instance-hour, Linux, shared tenancy) of one instance type in a region."""

    vcpus: int | None = Field(default=None, ge=1)
    memory_mib: int | None = Field(default=None, ge=0)
    gpu: GpuFacts | None = None
    on_demand_usd: float | None = Field(default=None, ge=0)
    reserved: dict[str, Reserved] = Field(
        default_factory=dict, description=f"by term: {', '.join(TERMS)}"
    )
    spot: Spot | None = None
    sources: list[str] = Field(default_factory=list, description="keys into the book's sources")
    notes: list[str] = Field(default_factory=list)


class PriceBook(_Strict):
    """Every price the report may use, and its provenance."""

    source: Source = Field(description="live pull, cache of a live pull, or the shipped snapshot")
    as_of: str = Field(description="when the prices were observed: YYYY-MM, a date or ISO time")
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


def effective_hourly(upfront_usd: float, hourly_usd: float, years: int) -> float:
    """Reserved price per hour over the whole term: ``upfront / (years * 8760) + hourly``."""
    return upfront_usd / (years * HOURS_PER_YEAR) + hourly_usd


def term_years(term: str) -> int:
    """``"3yr All Upfront"`` -> 3."""
    match = re.match(r"^(\d)yr ", term)
    if not match or term not in TERMS:
        raise ValueError(f"reserved term {term!r} is not one of {', '.join(TERMS)}")
    return int(match.group(1))


def load_price_book(path: str | Path, source: Source) -> PriceBook:
    """Read a price book; a malformed file raises ConfigError naming each bad field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            str(path),
            [
                Problem(
                    "snapshot" if source == "snapshot" else "cache",
                    str(path),
                    "no such file",
                    "give the path of a price book JSON (data/pricing/aws-<date>.json)",
                )
            ],
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(
            str(path),
            [Problem("(file)", str(path), f"is not valid JSON ({exc})", "restore the file")],
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), [Problem("(file)", type(data).__name__, "must be a JSON object")]
        )
    data = {**data, "source": source, "path": str(path)}
    try:
        book = PriceBook.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(path), problems_from_validation(PriceBook, err)) from None
    bad_terms = [
        Problem(
            f"regions.{region}.{itype}.reserved",
            term,
            "is not a reserved term",
            f"use one of: {', '.join(TERMS)}",
        )
        for region, types in book.regions.items()
        for itype, price in types.items()
        for term in price.reserved
        if term not in TERMS
    ]
    unknown = [
        Problem(
            f"regions.{region}.{itype}.sources",
            key,
            "is not a key of the book's sources",
            f"add it to sources or use one of: {', '.join(sorted(book.sources))}",
        )
        for region, types in book.regions.items()
        for itype, price in types.items()
        for key in [*price.sources, *([price.spot.source] if price.spot else [])]
        if key not in book.sources
    ]
    if bad_terms or unknown:
        raise ConfigError(str(path), [*bad_terms, *unknown])
    return book


def save_price_book(book: PriceBook, path: Path) -> Path:
    """Write a book as JSON (atomically), without the in-memory fields."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = book.model_dump(exclude={"path", "fallback"}, exclude_none=False)
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def newest_book(folder: Path) -> Path | None:
    """The newest ``aws-*.json`` in a folder (names sort by date), or None."""
    found = sorted(folder.glob("aws-*.json")) if folder.is_dir() else []
    return found[-1] if found else None
