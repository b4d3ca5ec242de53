"""Pull AWS prices with boto3, and choose the price book a report uses (live, cache, snapshot).

The only module that talks to AWS. Credentials come from the usual boto3 chain (environment,
``~/.aws``, instance role); the calls are read-only::

    book = pull_live(["p5.48xlarge", "m7i.xlarge"], ["us-east-1"])

- on-demand and reserved: the Price List Query API (``pricing`` client pinned to us-east-1,
  ``get_products`` through botocore's paginator, ``FormatVersion="aws_v1"``, ``MaxResults=100``,
  TERM_MATCH filters for Linux, shared tenancy, no pre-installed software, ``capacitystatus=Used``);
- GPU model, count and memory, vCPUs: ``ec2.describe_instance_types``;
- spot: ``ec2.describe_spot_price_history(ProductDescriptions=["Linux/UNIX"], StartTime=now)``,
  the latest price in each availability zone, reported as min and median across zones.

:func:`resolve_prices` applies the fallback: live -> newest cache -> shipped snapshot, and
records in the book which one was used and why.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cluster.config import ConfigError
from jobs.cost.pricelist import PriceListError, merge_offers, parse_offer
from jobs.cost.prices import (
    GpuFacts,
    InstancePrice,
    PriceBook,
    Spot,
    load_price_book,
    newest_book,
    save_price_book,
)

log = logging.getLogger(__name__)
PRICING_REGION = (
    "us-east-1"  # the Price List Query API lives in us-east-1, eu-central-1, ap-south-1
)
SOURCES = {
    "aws-price-list": "AWS Price List Query API: pricing.get_products(ServiceCode=AmazonEC2, "
    "Linux, Shared tenancy, preInstalledSw NA, capacitystatus Used), standard reserved terms",
    "aws-ec2": "AWS EC2 API: ec2.describe_instance_types (GPU model, count, memory; vCPUs)",
    "aws-spot-history": "AWS EC2 API: ec2.describe_spot_price_history (Linux/UNIX), the latest "
    "price in each availability zone",
}


class PricingUnavailable(RuntimeError):
    """Live prices could not be pulled (no credentials, no network, access denied, bad data)."""


def product_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """TERM_MATCH filters for one Linux, shared-tenancy, on-demand-capable instance type."""
    fields = (
        ("instanceType", instance_type),
        ("regionCode", region),
        ("operatingSystem", "Linux"),
        ("tenancy", "Shared"),
        ("preInstalledSw", "NA"),
        ("licenseModel", "No License required"),
        ("capacitystatus", "Used"),  # without it UnusedCapacityReservation rows duplicate
    )
    return [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in fields]


def get_products(pricing: Any, instance_type: str, region: str) -> list[str]:
    """Every PriceList entry (JSON strings) for one instance type in one region, all pages."""
    out: list[str] = []
    paginator = pricing.get_paginator("get_products")
    for page in paginator.paginate(
        ServiceCode="AmazonEC2",
        Filters=product_filters(instance_type, region),
        FormatVersion="aws_v1",
        MaxResults=100,
    ):
        out.extend(page.get("PriceList", []))
    return out


def instance_facts(
    ec2: Any, instance_types: Sequence[str]
) -> dict[str, tuple[int | None, int | None, GpuFacts | None]]:
    """vCPUs, memory (MiB) and GPU facts per instance type; unknown types are left out."""
    from botocore.exceptions import ClientError

    try:
        found = ec2.describe_instance_types(InstanceTypes=list(instance_types))["InstanceTypes"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidInstanceType":
            raise
        found = []
        for itype in instance_types:  # one unknown type fails the whole call: ask one by one
            try:
                found += ec2.describe_instance_types(InstanceTypes=[itype])["InstanceTypes"]
            except ClientError as one:
                if one.response.get("Error", {}).get("Code") != "InvalidInstanceType":
                    raise
                log.warning("describe_instance_types does not know %s", itype)
    out: dict[str, tuple[int | None, int | None, GpuFacts | None]] = {}
    for it in found:
        gpus = (it.get("GpuInfo") or {}).get("Gpus") or []
        gpu = None
        if gpus:
            first = gpus[0]
            gpu = GpuFacts(
                name=str(first["Name"]),
                count=sum(int(g.get("Count", 0)) for g in gpus),
                memory_mib=int((first.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
            )
        out[it["InstanceType"]] = (
            (it.get("VCpuInfo") or {}).get("DefaultVCpus"),
            (it.get("MemoryInfo") or {}).get("SizeInMiB"),
            gpu,
        )
    return out


def spot_prices(ec2: Any, instance_types: Sequence[str], now: dt.datetime) -> dict[str, Spot]:
    """Min and median of the latest spot price in each availability zone, per instance type."""
    latest: dict[tuple[str, str], tuple[dt.datetime, float]] = {}
    paginator = ec2.get_paginator("describe_spot_price_history")
    for page in paginator.paginate(
        ProductDescriptions=["Linux/UNIX"], InstanceTypes=list(instance_types), StartTime=now
    ):
        for rec in page.get("SpotPriceHistory", []):
            key = (rec["InstanceType"], rec["AvailabilityZone"])
            stamp = rec["Timestamp"]
            if key not in latest or stamp > latest[key][0]:
                latest[key] = (stamp, float(rec["SpotPrice"]))
    out: dict[str, Spot] = {}
    for itype in instance_types:
        zones = {az: price for (t, az), (_, price) in sorted(latest.items()) if t == itype}
        if zones:
            out[itype] = Spot(
                min_usd=min(zones.values()),
                median_usd=statistics.median(zones.values()),
                zones=zones,
                as_of=now.isoformat(timespec="seconds"),
                source="aws-spot-history",
            )
    return out


def pull_live(
    instance_types: Sequence[str],
    regions: Sequence[str],
    *,
    session: Any = None,
    now: dt.datetime | None = None,
) -> PriceBook:
    """Pull on-demand, reserved and spot prices and GPU facts for the given types and regions."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    now = now or dt.datetime.now(dt.UTC)
    session = session or boto3.session.Session()
    types = sorted(set(instance_types))
    try:
        pricing = session.client("pricing", region_name=PRICING_REGION)
        book_regions: dict[str, dict[str, InstancePrice]] = {}
        notes = []
        for region in regions:
            ec2 = session.client("ec2", region_name=region)
            offers = [parse_offer(raw) for t in types for raw in get_products(pricing, t, region)]
            prices = merge_offers(offers)
            facts = instance_facts(ec2, types)
            spot = spot_prices(ec2, types, now)
            for itype in types:
                if itype not in prices:
                    notes.append(f"{itype}: no Linux on-demand offer in {region}")
                    continue
                vcpus, memory, gpu = facts.get(itype, (None, None, None))
                price = prices[itype]
                prices[itype] = price.model_copy(
                    update={
                        "vcpus": vcpus or price.vcpus,
                        "memory_mib": memory,
                        "gpu": gpu,
                        "spot": spot.get(itype),
                        "sources": ["aws-price-list", "aws-ec2"],
                    }
                )
            book_regions[region] = prices
    except (BotoCoreError, ClientError) as exc:
        raise PricingUnavailable(f"{type(exc).__name__}: {exc}") from exc
    except PriceListError as exc:
        raise PricingUnavailable(str(exc)) from exc
    return PriceBook(
        source="live",
        as_of=now.isoformat(timespec="seconds"),
        sources=SOURCES,
        notes=notes,
        regions=book_regions,
    )


def _covers(book: PriceBook, region: str, types: Sequence[str]) -> list[str]:
    return [t for t in types if book.get(region, t) is None]


def resolve_prices(
    mode: str,
    instance_types: Sequence[str],
    region: str,
    *,
    snapshot: Path,
    cache_dir: Path,
    regions: Sequence[str] = (),
    puller: Callable[..., PriceBook] = pull_live,
) -> PriceBook:
    """The price book for a report: ``live`` falls back to the newest cache, then the snapshot;
    ``cache`` falls back to the snapshot. The book says which it is and why (``fallback``)."""
    reasons: list[str] = []
    if mode == "live":
        try:
            book = puller(instance_types, sorted({region, *regions}))
            stamp = book.as_of[:10]
            path = save_price_book(book, cache_dir / f"aws-{stamp}.json")
            return book.model_copy(update={"path": str(path)})
        except PricingUnavailable as exc:
            log.warning("live AWS prices unavailable: %s", exc)
            reasons.append(f"live pull failed ({exc})")
    if mode in ("live", "cache"):
        cached = newest_book(cache_dir)
        if cached is None:
            reasons.append(f"no cached prices under {cache_dir}")
        else:
            try:
                book = load_price_book(cached, "cache")
            except ConfigError as exc:
                reasons.append(f"cache {cached} is unreadable ({exc.problems[0].render()})")
            else:
                missing = _covers(book, region, instance_types)
                if not missing:
                    fallback = f"fell back to the cache: {'; '.join(reasons)}" if reasons else None
                    return book.model_copy(update={"fallback": fallback})
                reasons.append(f"cache {cached.name} lacks {', '.join(missing)} in {region}")
    book = load_price_book(snapshot, "snapshot")
    fallback = f"fell back to the snapshot: {'; '.join(reasons)}" if reasons else None
    return book.model_copy(update={"fallback": fallback})
