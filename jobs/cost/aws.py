"""Pull AWS prices with boto3, and choose the price book a report uses (live, cache, snapshot).

The only module that talks to AWS. Credentials come from the usual boto3 chain (environment,
``~/.aws``, instance role); every call is read-only::

    book = pull_live(["p5.48xlarge", "m7i.xlarge"], ["us-east-1"], block_days=7)

- on-demand and Reserved Instances: the Price List Query API (``pricing`` pinned to us-east-1,
  ``get_products`` through botocore's paginator, ``FormatVersion="aws_v1"``, ``MaxResults=100``,
  TERM_MATCH filters for Linux, shared tenancy, no pre-installed software,
  ``capacitystatus=Used``), standard reserved terms from ``terms.Reserved``;
- EC2 Instance and Compute Savings Plans: ``savingsplans.describe_savings_plans_offering_rates``
  (Linux/UNIX, shared tenancy, the ``BoxUsage`` rate of the instance type);
- Capacity Blocks: ``ec2.describe_capacity_block_offerings`` for one instance and a block of
  ``block_days``; the upfront fee per instance-hour, median over the offerings;
- spot: ``ec2.describe_spot_price_history(ProductDescriptions=["Linux/UNIX"], StartTime=now)``,
  the latest price in each availability zone, median across zones;
- GPU model, count and memory, vCPUs: ``ec2.describe_instance_types``.

:func:`resolve_prices` applies the fallback live -> newest cache -> shipped snapshot, and
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
    Price,
    PriceBook,
    load_price_book,
    newest_book,
    save_price_book,
)

log = logging.getLogger(__name__)
# the Price List Query API lives in us-east-1, eu-central-1, ap-south-1
PRICING_REGION = "us-east-1"
SP_TYPES = {"EC2Instance": "EC2 Instance SP", "Compute": "Compute SP"}
SP_YEARS = {31536000: "1yr", 94608000: "3yr"}
SOURCES = {
    "aws-price-list": "AWS Price List Query API: pricing.get_products(ServiceCode=AmazonEC2, "
    "Linux, Shared tenancy, preInstalledSw NA, capacitystatus Used), on-demand and standard "
    "reserved terms",
    "aws-savings-plans": "AWS Savings Plans API: savingsplans.describe_savings_plans_offering_"
    "rates (EC2Instance and Compute plans, Linux/UNIX, shared tenancy, BoxUsage)",
    "aws-capacity-blocks": "AWS EC2 API: ec2.describe_capacity_block_offerings (upfront fee per "
    "instance-hour, median over the offerings returned)",
    "aws-spot-history": "AWS EC2 API: ec2.describe_spot_price_history (Linux/UNIX), the latest "
    "price in each availability zone, median across zones",
    "aws-ec2": "AWS EC2 API: ec2.describe_instance_types (GPU model, count, memory; vCPUs)",
}


class PricingUnavailable(RuntimeError):
    """Live prices could not be pulled (no credentials, no network, access denied, bad data)."""


def product_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """TERM_MATCH filters for one Linux, shared-tenancy instance type."""
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


def savings_plan_prices(
    sp: Any, instance_types: Sequence[str], region: str, as_of: str
) -> dict[str, dict[str, Price]]:
    """EC2 Instance and Compute Savings Plan rates per instance type and term (all pages).

    A plan's rate is per hour of use, and the commitment is paid every hour of the term; the
    payment option moves it in time: All Upfront pays ``rate x hours`` at the start, Partial
    half of it, No Upfront nothing."""
    params: dict[str, Any] = {
        "savingsPlanTypes": list(SP_TYPES),
        "products": ["EC2"],
        "serviceCodes": ["AmazonEC2"],
        "filters": [
            {"name": "region", "values": [region]},
            {"name": "instanceType", "values": list(instance_types)},
            {"name": "productDescription", "values": ["Linux/UNIX"]},
            {"name": "tenancy", "values": ["shared"]},
        ],
        "maxResults": 1000,
    }
    out: dict[str, dict[str, Price]] = {}
    while True:
        page = sp.describe_savings_plans_offering_rates(**params)
        for rate in page.get("searchResults", []):
            props = {p["name"]: p["value"] for p in rate.get("properties", [])}
            itype, offer = props.get("instanceType"), rate["savingsPlanOffering"]
            term = SP_YEARS.get(offer.get("durationSeconds"))
            if (
                itype not in instance_types
                or term is None
                or rate.get("unit") != "Hrs"
                or not rate.get("usageType", "").endswith(f"BoxUsage:{itype}")
            ):
                continue  # dedicated hosts, other usage types, other terms
            option = f"{SP_TYPES[offer['planType']]} {term} {offer['paymentOption']}"
            value, hours = float(rate["rate"]), (8760 if term == "1yr" else 3 * 8760)
            share = {"All Upfront": 1.0, "Partial Upfront": 0.5}.get(offer["paymentOption"], 0.0)
            price = Price(
                hourly_usd=value * (1 - share),
                upfront_usd=value * hours * share,
                source="aws-savings-plans",
                as_of=as_of,
            )
            seen = out.setdefault(itype, {}).get(option)
            if seen is not None and seen != price:
                raise PriceListError(itype, "savingsPlanOfferingRate", f"has two {option} rates")
            out[itype][option] = price
        token = page.get("nextToken")
        if not token:
            return out
        params["nextToken"] = token


def capacity_block_prices(
    ec2: Any, instance_types: Sequence[str], days: int, as_of: str
) -> dict[str, dict[str, Price]]:
    """Effective hourly price of a Capacity Block of ``days`` for one instance: the upfront fee
    / (hours x instances), median over the offerings (start dates and zones) AWS returns."""
    from botocore.exceptions import ClientError

    out: dict[str, dict[str, Price]] = {}
    paginator = ec2.get_paginator("describe_capacity_block_offerings")
    for itype in instance_types:
        rates = []
        try:
            for page in paginator.paginate(
                InstanceType=itype, InstanceCount=1, CapacityDurationHours=24 * days
            ):
                for o in page.get("CapacityBlockOfferings", []):
                    hours = o["CapacityBlockDurationHours"] * o.get("InstanceCount", 1)
                    rates.append(float(o["UpfrontFee"]) / hours)
        except ClientError as exc:  # not every type has Capacity Blocks (g6e, m7i have none)
            if exc.response.get("Error", {}).get("Code") not in (
                "InvalidParameterValue",
                "Unsupported",
            ):
                raise
        if rates:
            out[itype] = {
                "Capacity Block": Price(
                    hourly_usd=statistics.median(rates),
                    source="aws-capacity-blocks",
                    as_of=as_of,
                    note=f"{days}-day block, median of {len(rates)} offerings (lowest "
                    f"${min(rates):.4g} an instance-hour)",
                )
            }
    return out


def spot_prices(
    ec2: Any, instance_types: Sequence[str], now: dt.datetime
) -> dict[str, dict[str, Price]]:
    """Median (and min, in the note) of the latest spot price in each availability zone."""
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
    out: dict[str, dict[str, Price]] = {}
    for itype in instance_types:
        zones = {az: price for (t, az), (_, price) in sorted(latest.items()) if t == itype}
        if zones:
            out[itype] = {
                "spot": Price(
                    hourly_usd=statistics.median(zones.values()),
                    source="aws-spot-history",
                    as_of=now.isoformat(timespec="seconds"),
                    note=f"median of {len(zones)} zones (lowest ${min(zones.values()):.4g} an "
                    "instance-hour)",
                )
            }
    return out


def instance_facts(ec2: Any, instance_types: Sequence[str]) -> dict[str, dict[str, Any]]:
    """vCPUs, memory (MiB) and GPU facts per instance type (as InstancePrice fields); unknown
    types are left out."""
    from botocore.exceptions import ClientError

    def describe(types: list[str]) -> list[dict[str, Any]]:
        try:
            return ec2.describe_instance_types(InstanceTypes=types)["InstanceTypes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidInstanceType":
                raise
            if len(types) == 1:
                log.warning("describe_instance_types does not know %s", types[0])
                return []
            # one unknown type fails the whole call: ask one by one
            return [it for t in types for it in describe([t])]

    out = {}
    for it in describe(list(instance_types)):
        gpus = (it.get("GpuInfo") or {}).get("Gpus") or []
        out[it["InstanceType"]] = {
            "vcpus": (it.get("VCpuInfo") or {}).get("DefaultVCpus"),
            "memory_mib": (it.get("MemoryInfo") or {}).get("SizeInMiB"),
            "gpu": GpuFacts(
                name=str(gpus[0]["Name"]),
                count=sum(int(g.get("Count", 0)) for g in gpus),
                memory_mib=int((gpus[0].get("MemoryInfo") or {}).get("SizeInMiB", 0)),
                # the API says nothing of NVLink: AWS's P family has NVSwitch, the G family PCIe
                interconnect="nvswitch" if it["InstanceType"].startswith("p") else "pcie",
            )
            if gpus
            else None,
            "facts_source": "aws-ec2",
        }
    return out


def pull_live(
    instance_types: Sequence[str],
    regions: Sequence[str],
    *,
    block_days: int = 7,
    session: Any = None,
    now: dt.datetime | None = None,
) -> PriceBook:
    """Pull every price option and the GPU facts for the given types and regions."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    now = now or dt.datetime.now(dt.UTC)
    as_of = now.isoformat(timespec="seconds")
    session = session or boto3.session.Session()
    types = sorted(set(instance_types))
    try:
        pricing = session.client("pricing", region_name=PRICING_REGION)
        sp = session.client("savingsplans", region_name=PRICING_REGION)
        book_regions: dict[str, dict[str, InstancePrice]] = {}
        notes = []
        for region in regions:
            ec2 = session.client("ec2", region_name=region)
            prices = merge_offers(
                [parse_offer(raw, as_of) for t in types for raw in get_products(pricing, t, region)]
            )
            facts = instance_facts(ec2, types)
            more = [
                savings_plan_prices(sp, types, region, as_of),
                capacity_block_prices(ec2, types, block_days, as_of),
                spot_prices(ec2, types, now),
            ]
            for itype in types:
                if itype not in prices:
                    notes.append(f"{itype}: no Linux on-demand offer in {region}")
                    continue
                for extra in more:
                    prices[itype].prices.update(extra.get(itype, {}))
                update = {k: v for k, v in facts.get(itype, {}).items() if v is not None}
                prices[itype] = prices[itype].model_copy(update=update)
            book_regions[region] = prices
    except (BotoCoreError, ClientError) as exc:
        raise PricingUnavailable(f"{type(exc).__name__}: {exc}") from exc
    except PriceListError as exc:
        raise PricingUnavailable(str(exc)) from exc
    return PriceBook(source="live", as_of=as_of, sources=SOURCES, notes=notes, regions=book_regions)


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
            path = save_price_book(book, cache_dir / f"aws-{book.as_of[:10]}.json")
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
                missing = [t for t in instance_types if book.get(region, t) is None]
                if not missing:
                    fallback = f"fell back to the cache: {'; '.join(reasons)}" if reasons else None
                    return book.model_copy(update={"fallback": fallback})
                reasons.append(f"cache {cached.name} lacks {', '.join(missing)} in {region}")
    book = load_price_book(snapshot, "snapshot")
    fallback = f"fell back to the snapshot: {'; '.join(reasons)}" if reasons else None
    return book.model_copy(update={"fallback": fallback})
