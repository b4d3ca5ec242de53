"""Real-shaped test data: Price List ``PriceList`` entries (JSON strings, as
``pricing.get_products(FormatVersion="aws_v1")`` returns them), Savings Plans offering rates,
Capacity Block offerings, spot history, instance types, a full price book and a bench.json.

The shapes (keys, nesting, codes, string-typed prices) follow the AWS APIs (botocore's service
models: Stubber checks every response against them); the prices are made-up test numbers, not
AWS figures, unless a comment says otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
SNAPSHOT = REPO / "data" / "pricing" / "aws-2026-12.json"

ON_DEMAND_CODE = "JRTCKXETXF"
HOURLY_RATE = "6YS6EN2CT7"
UPFRONT_RATE = "2TG2D8R56U"
RESERVED_CODES = {  # offer term codes of standard and convertible reservations
    ("1yr", "standard", "No Upfront"): "4NA7Y494T4",
    ("1yr", "standard", "All Upfront"): "6QCMYABX3D",
    ("3yr", "standard", "Partial Upfront"): "38NPMPTW36",
    ("3yr", "standard", "All Upfront"): "NQ3QZPMQV9",
    ("1yr", "convertible", "No Upfront"): "7NE97W5U4E",
}


def _dim(sku: str, code: str, rate: str, unit: str, usd: str, desc: str) -> dict[str, Any]:
    return {
        "unit": unit,
        "endRange": "Inf" if unit == "Hrs" else None,
        "description": desc,
        "appliesTo": [],
        "rateCode": f"{sku}.{code}.{rate}",
        "beginRange": "0" if unit == "Hrs" else None,
        "pricePerUnit": {"USD": usd},
    }


def product(
    instance_type: str = "p5.48xlarge",
    on_demand: str = "55.0400000000",
    *,
    sku: str = "KX3PYB4T6XM5D8QZ",
    region: str = "us-east-1",
    capacity: str = "Used",
    vcpu: str = "192",
    gpu: str = "8",
    reserved: dict[tuple[str, str, str], tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """One PriceList entry as a dict; ``reserved`` maps (length, class, option) to
    (upfront USD, hourly USD)."""
    terms: dict[str, Any] = {
        "OnDemand": {
            f"{sku}.{ON_DEMAND_CODE}": {
                "priceDimensions": {
                    f"{sku}.{ON_DEMAND_CODE}.{HOURLY_RATE}": _dim(
                        sku,
                        ON_DEMAND_CODE,
                        HOURLY_RATE,
                        "Hrs",
                        on_demand,
                        f"${float(on_demand):.3f} per On Demand Linux {instance_type} "
                        "Instance Hour",
                    )
                },
                "sku": sku,
                "effectiveDate": "2026-08-01T00:00:00Z",
                "offerTermCode": ON_DEMAND_CODE,
                "termAttributes": {},
            }
        }
    }
    if reserved:
        terms["Reserved"] = {}
        for (length, klass, option), (upfront, hourly) in reserved.items():
            code = RESERVED_CODES[(length, klass, option)]
            dims = {
                f"{sku}.{code}.{HOURLY_RATE}": _dim(
                    sku, code, HOURLY_RATE, "Hrs", hourly, "Linux/UNIX (Amazon VPC)"
                )
            }
            if option != "No Upfront":
                dims[f"{sku}.{code}.{UPFRONT_RATE}"] = _dim(
                    sku, code, UPFRONT_RATE, "Quantity", upfront, "Upfront Fee"
                )
            terms["Reserved"][f"{sku}.{code}"] = {
                "priceDimensions": dims,
                "sku": sku,
                "effectiveDate": "2026-08-01T00:00:00Z",
                "offerTermCode": code,
                "termAttributes": {
                    "LeaseContractLength": length,
                    "OfferingClass": klass,
                    "PurchaseOption": option,
                },
            }
    return {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "instanceType": instance_type,
                "regionCode": region,
                "location": "US East (N. Virginia)",
                "locationType": "AWS Region",
                "vcpu": vcpu,
                "memory": "2048 GiB",
                "gpu": gpu,
                "gpuMemory": "640 GB",
                "instanceFamily": "GPU instance",
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "licenseModel": "No License required",
                "capacitystatus": capacity,
                "marketoption": "OnDemand",
                "operation": "RunInstances",
                "usagetype": f"BoxUsage:{instance_type}",
                "servicecode": "AmazonEC2",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": terms,
        "version": "20260801000000",
        "publicationDate": "2026-08-01T00:00:00Z",
    }


def as_string(entry: dict[str, Any]) -> str:
    return json.dumps(entry)


def first(node: dict[str, Any]) -> Any:
    """The only (first) value of a term or dimension map, e.g. ``first(terms["OnDemand"])``."""
    return next(iter(node.values()))


P5_RESERVED = {  # test numbers: (upfront, hourly)
    ("1yr", "standard", "No Upfront"): ("0", "40.0000000000"),
    ("1yr", "standard", "All Upfront"): ("306600", "0.0000000000"),
    ("3yr", "standard", "Partial Upfront"): ("262800", "10.0000000000"),
    ("3yr", "standard", "All Upfront"): ("525600", "0.0000000000"),
    ("1yr", "convertible", "No Upfront"): ("0", "45.0000000000"),
}


def _stats(p50: float, p90: float, p99: float) -> dict[str, float]:
    return {"mean": p50, "p50": p50, "p90": p90, "p99": p99}


def bench_json(created_at: str = "2026-11-20T10:00:00+00:00") -> dict[str, Any]:
    """A bench.json like jobs.bench_serve writes (three levels; p95 absent, as it writes it)."""
    levels = [
        (1, 14.0, 0.22, (4.5, 4.9, 5.2)),
        (4, 48.0, 0.75, (5.3, 6.0, 7.1)),
        (16, 110.0, 1.7, (9.3, 11.0, 13.5)),
    ]
    return {
        "created_at": created_at,
        "url": "http://127.0.0.1:8000/v1",
        "model": "smollm2-support",
        "requests": 32,
        "max_tokens": 64,
        "levels": [
            {
                "concurrency": c,
                "completed": 32,
                "errors": 0,
                "duration_s": 10.0,
                "output_token_throughput": tok,
                "request_throughput": rps,
                "e2e_s": _stats(*e2e),
                "ttft_s": _stats(0.2 * c**0.5, 0.3 * c**0.5, 0.4 * c**0.5),
                "tpot_s": _stats(0.05, 0.06, 0.07),
                "itl_s": _stats(0.05, 0.06, 0.07),
            }
            for c, tok, rps, e2e in levels
        ],
    }


def sp_rate(
    itype: str,
    plan: str,
    years: int,
    payment: str,
    rate: str,
    region: str = "us-east-1",
    usage: str | None = None,
) -> dict[str, Any]:
    """One ``searchResults`` element of ``describe_savings_plans_offering_rates``."""
    family = itype.split(".")[0]
    return {
        "savingsPlanOffering": {
            "offeringId": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{itype}{plan}{years}{payment}")),
            "paymentOption": payment,
            "planType": plan,
            "durationSeconds": years * 31536000,
            "currency": "USD",
            "planDescription": f"{years} year {payment} {family} {plan} Savings Plan",
        },
        "rate": rate,
        "unit": "Hrs",
        "productType": "EC2",
        "serviceCode": "AmazonEC2",
        "usageType": usage or f"BoxUsage:{itype}",
        "operation": "RunInstances",
        "properties": [
            {"name": "region", "value": region},
            {"name": "instanceType", "value": itype},
            {"name": "instanceFamily", "value": family},
            {"name": "productDescription", "value": "Linux/UNIX"},
            {"name": "tenancy", "value": "shared"},
        ],
    }


def block_offering(itype: str, hours: int, fee: str, az: str, start: dt.datetime) -> dict[str, Any]:
    """One ``CapacityBlockOfferings`` element of ``describe_capacity_block_offerings``."""
    return {
        "CapacityBlockOfferingId": f"cbr-{uuid.uuid5(uuid.NAMESPACE_DNS, az + fee).hex[:17]}",
        "InstanceType": itype,
        "AvailabilityZone": az,
        "InstanceCount": 1,
        "StartDate": start,
        "EndDate": start + dt.timedelta(hours=hours),
        "CapacityBlockDurationHours": hours,
        "UpfrontFee": fee,
        "CurrencyCode": "USD",
        "Tenancy": "default",
    }


def instance_type(itype: str, vcpus: int, mib: int, gpu: tuple[str, int, int] | None) -> dict:
    """One ``InstanceTypes`` element of ``describe_instance_types`` (the fields read)."""
    out: dict[str, Any] = {
        "InstanceType": itype,
        "VCpuInfo": {"DefaultVCpus": vcpus},
        "MemoryInfo": {"SizeInMiB": mib},
    }
    if gpu:
        name, count, gpu_mib = gpu
        out["GpuInfo"] = {
            "Gpus": [
                {
                    "Name": name,
                    "Manufacturer": "NVIDIA",
                    "Count": count,
                    "MemoryInfo": {"SizeInMiB": gpu_mib},
                }
            ],
            "TotalGpuMemoryInMiB": count * gpu_mib,
        }
    return out
