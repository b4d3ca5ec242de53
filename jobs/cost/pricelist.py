"""Parse the EC2 Price List Query API's ``PriceList`` entries (pure, no AWS calls).

Each entry of ``pricing.get_products(..., FormatVersion="aws_v1")["PriceList"]`` is a JSON
*string* with ``product.attributes`` (``instanceType``, ``regionCode``, ``vcpu``, ...) and
``terms``: ``OnDemand.*.priceDimensions.*.pricePerUnit.USD`` (unit ``Hrs``) and
``Reserved.*`` whose ``termAttributes`` give ``LeaseContractLength`` (1yr/3yr),
``PurchaseOption`` (No/Partial/All Upfront) and ``OfferingClass``, with an "Upfront Fee"
dimension (unit ``Quantity``) beside the hourly one. The shape is checked by pydantic models::

    offers = [parse_offer(s, as_of="2026-11-27") for s in page["PriceList"]]
    prices = merge_offers(offers)          # {"p5.48xlarge": InstancePrice(...)}

Anything missing or malformed raises :class:`PriceListError` naming the instance type and the
field. Rows of another capacity status (``UnusedCapacityReservation``, ``AllocatedHost``)
duplicate the instance type; the query filters them out and :func:`merge_offers` skips them
again, in case a caller forgot the filter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, NonNegativeFloat, ValidationError, field_validator

from jobs.cost.prices import PAYMENTS, InstancePrice, Price

SOURCE = "aws-price-list"
HOURLY = ("Hrs", "Hours")


class PriceListError(ValueError):
    """A PriceList entry that cannot be used: which instance type, which field, what is wrong."""

    def __init__(self, instance_type: str, field_path: str, message: str):
        self.instance_type = instance_type
        self.field_path = field_path
        super().__init__(f"PriceList entry for {instance_type}: {field_path} {message}")


class _Dimension(BaseModel):
    unit: str
    pricePerUnit: dict[Literal["USD"], NonNegativeFloat] = Field(min_length=1)


class _Term(BaseModel):
    priceDimensions: dict[str, _Dimension] = Field(min_length=1)
    termAttributes: dict[str, str] = Field(default_factory=dict)


class _Attributes(BaseModel):
    instanceType: str = Field(min_length=1)
    regionCode: str
    vcpu: int | None = None
    capacitystatus: str = "Used"

    @field_validator("vcpu", mode="before")
    @classmethod
    def _not_applicable(cls, v: Any) -> Any:
        return None if v in ("", "NA") else v


class _Entry(BaseModel):
    product: dict[str, Any]
    terms: dict[Literal["OnDemand", "Reserved"], dict[str, _Term]]


@dataclass
class Offer:
    """One parsed PriceList entry."""

    instance_type: str
    region: str
    capacity_status: str
    sku: str
    vcpus: int | None
    prices: dict[str, Price] = field(default_factory=dict)  # on-demand and RI terms


def _fail(itype: str, err: ValidationError, prefix: str = "") -> PriceListError:
    e = err.errors()[0]
    where = prefix + ".".join(str(x) for x in e["loc"])
    return PriceListError(itype, where, f"is missing or invalid ({e['msg']})")


def _reserved(code: str, term: _Term, itype: str) -> tuple[str, float, float] | None:
    """(option, upfront, hourly) of a standard reserved term; None for convertible ones."""
    attrs = term.termAttributes
    if attrs.get("OfferingClass", "standard") != "standard":
        return None  # convertible reservations cost more; the report compares standard ones
    option = f"RI {attrs.get('LeaseContractLength')} {attrs.get('PurchaseOption')}"
    if option not in {f"RI {t} {p}" for t in ("1yr", "3yr") for p in PAYMENTS}:
        where = f"terms.Reserved.{code}.termAttributes"
        raise PriceListError(itype, where, f"has an unknown term {option[3:]!r}")
    dims = term.priceDimensions.values()
    upfront = sum(d.pricePerUnit["USD"] for d in dims if d.unit == "Quantity")
    return option, upfront, sum(d.pricePerUnit["USD"] for d in dims if d.unit in HOURLY)


def parse_offer(raw: str | dict[str, Any], as_of: str) -> Offer:
    """Parse one PriceList entry (the JSON string as the API returns it), observed ``as_of``."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise PriceListError("(unknown)", "PriceList entry", f"is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PriceListError("(unknown)", "PriceList entry", "is not a JSON object")
    product = data.get("product") if isinstance(data.get("product"), dict) else {}
    try:
        attrs = _Attributes.model_validate(product.get("attributes"))
    except ValidationError as err:
        itype = str((product.get("attributes") or {}).get("instanceType") or "(unknown)")
        raise _fail(itype, err, "product.attributes.") from None
    itype = attrs.instanceType
    try:
        entry = _Entry.model_validate(data)
    except ValidationError as err:
        raise _fail(itype, err) from None
    prices: dict[str, Price] = {}
    for code, term in entry.terms.get("OnDemand", {}).items():
        hourly = [d.pricePerUnit["USD"] for d in term.priceDimensions.values() if d.unit in HOURLY]
        if not hourly:
            raise PriceListError(itype, f"terms.OnDemand.{code}", "has no hourly (unit Hrs) price")
        prices["on-demand"] = Price(hourly_usd=hourly[0], source=SOURCE, as_of=as_of)
    for code, term in entry.terms.get("Reserved", {}).items():
        found = _reserved(code, term, itype)
        if found:
            option, upfront, hourly = found
            prices[option] = Price(
                hourly_usd=hourly, upfront_usd=upfront, source=SOURCE, as_of=as_of
            )
    if not prices:
        raise PriceListError(itype, "terms", "has neither OnDemand nor Reserved prices")
    return Offer(
        itype,
        attrs.regionCode,
        attrs.capacitystatus,
        str(product.get("sku", "")),
        attrs.vcpu,
        prices,
    )


def merge_offers(offers: list[Offer]) -> dict[str, InstancePrice]:
    """One InstancePrice per instance type from the ``capacitystatus=Used`` offers.

    Two different Used offers for the same type and region are an error (the filters were too
    loose): guessing which one applies would make the report quietly wrong.
    """
    by_type: dict[str, Offer] = {}
    for offer in offers:
        if offer.capacity_status != "Used":
            continue  # UnusedCapacityReservation / AllocatedHost rows duplicate the type
        seen = by_type.setdefault(offer.instance_type, offer)
        if seen.prices != offer.prices:
            raise PriceListError(
                offer.instance_type,
                "product.sku",
                f"has two different offers ({seen.sku}, {offer.sku}) in {offer.region}; "
                "narrow the filters (operatingSystem, tenancy, preInstalledSw, licenseModel)",
            )
    return {t: InstancePrice(vcpus=o.vcpus, prices=o.prices) for t, o in by_type.items()}
