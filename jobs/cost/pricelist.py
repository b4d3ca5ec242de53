"""Parse the EC2 Price List Query API's ``PriceList`` entries (pure, no AWS calls).

Each entry of ``pricing.get_products(..., FormatVersion="aws_v1")["PriceList"]`` is a JSON
*string* with ``product.attributes`` (``instanceType``, ``regionCode``, ``vcpu``, ...) and
``terms``: ``OnDemand.*.priceDimensions.*.pricePerUnit.USD`` (unit ``Hrs``) and
``Reserved.*`` whose ``termAttributes`` give ``LeaseContractLength`` (1yr/3yr),
``PurchaseOption`` (No/Partial/All Upfront) and ``OfferingClass``, with an "Upfront Fee"
dimension (unit ``Quantity``) beside the hourly one.

    offers = [parse_offer(s) for s in page["PriceList"]]
    prices = merge_offers(offers)          # {"p5.48xlarge": InstancePrice(...)}

Anything missing or malformed raises :class:`PriceListError` naming the instance type and the
field. Rows of another capacity status (``UnusedCapacityReservation``, ``AllocatedHost``)
duplicate the instance type; the query filters them out and :func:`merge_offers` skips them
again, in case a caller forgot the filter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jobs.cost.prices import InstancePrice, Reserved, effective_hourly, term_years


class PriceListError(ValueError):
    """A PriceList entry that cannot be used: which instance type, which field, what is wrong."""

    def __init__(self, instance_type: str, field_path: str, message: str):
        self.instance_type = instance_type
        self.field_path = field_path
        super().__init__(f"PriceList entry for {instance_type}: {field_path} {message}")


@dataclass
class Offer:
    """One parsed PriceList entry."""

    instance_type: str
    region: str
    capacity_status: str
    sku: str
    vcpus: int | None
    on_demand_usd: float | None
    reserved: dict[str, Reserved] = field(default_factory=dict)


def _get(node: Any, path: list[str], itype: str, where: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise PriceListError(itype, ".".join([where, *path]), "is missing")
        node = node[key]
    return node


def _usd(dim: Any, itype: str, where: str) -> float:
    raw = _get(dim, ["pricePerUnit", "USD"], itype, where)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise PriceListError(
            itype, f"{where}.pricePerUnit.USD", f"is not a number ({raw!r})"
        ) from None
    if value < 0:
        raise PriceListError(itype, f"{where}.pricePerUnit.USD", f"is negative ({raw!r})")
    return value


def _dimensions(term: Any, itype: str, where: str) -> dict[str, Any]:
    dims = _get(term, ["priceDimensions"], itype, where)
    if not isinstance(dims, dict) or not dims:
        raise PriceListError(itype, f"{where}.priceDimensions", "is empty or not an object")
    return dims


def _on_demand(terms: dict[str, Any], itype: str) -> float | None:
    on_demand = terms.get("OnDemand")
    if on_demand is None:
        return None
    if not isinstance(on_demand, dict):
        raise PriceListError(itype, "terms.OnDemand", "is not an object")
    hourly = []
    for code, term in on_demand.items():
        where = f"terms.OnDemand.{code}"
        for dcode, dim in _dimensions(term, itype, where).items():
            unit = _get(dim, ["unit"], itype, f"{where}.priceDimensions.{dcode}")
            if unit in ("Hrs", "Hours"):
                hourly.append(_usd(dim, itype, f"{where}.priceDimensions.{dcode}"))
    if not hourly:
        raise PriceListError(itype, "terms.OnDemand", "has no hourly (unit Hrs) dimension")
    return hourly[0]


def _reserved(terms: dict[str, Any], itype: str) -> dict[str, Reserved]:
    reserved = terms.get("Reserved") or {}
    if not isinstance(reserved, dict):
        raise PriceListError(itype, "terms.Reserved", "is not an object")
    out: dict[str, Reserved] = {}
    for code, term in reserved.items():
        where = f"terms.Reserved.{code}"
        attrs = _get(term, ["termAttributes"], itype, where)
        if attrs.get("OfferingClass", "standard") != "standard":
            continue  # convertible reservations cost more; the report compares standard ones
        length = _get(attrs, ["LeaseContractLength"], itype, f"{where}.termAttributes")
        option = _get(attrs, ["PurchaseOption"], itype, f"{where}.termAttributes")
        name = f"{length} {option}"
        try:
            years = term_years(name)
        except ValueError:
            raise PriceListError(
                itype, f"{where}.termAttributes", f"has an unknown term {name!r}"
            ) from None
        upfront = hourly = 0.0
        for dcode, dim in _dimensions(term, itype, where).items():
            dwhere = f"{where}.priceDimensions.{dcode}"
            unit = _get(dim, ["unit"], itype, dwhere)
            if unit == "Quantity":
                upfront += _usd(dim, itype, dwhere)
            elif unit in ("Hrs", "Hours"):
                hourly += _usd(dim, itype, dwhere)
            else:
                raise PriceListError(itype, f"{dwhere}.unit", f"is unexpected ({unit!r})")
        out[name] = Reserved(
            upfront_usd=upfront,
            hourly_usd=hourly,
            effective_hourly_usd=effective_hourly(upfront, hourly, years),
        )
    return out


def parse_offer(raw: str | dict[str, Any]) -> Offer:
    """Parse one PriceList entry (the JSON string as the API returns it)."""
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise PriceListError("(unknown)", "PriceList entry", f"is not JSON ({exc})") from None
    else:
        data = raw
    if not isinstance(data, dict):
        raise PriceListError("(unknown)", "PriceList entry", "is not a JSON object")
    product = data.get("product")
    attrs = product.get("attributes") if isinstance(product, dict) else None
    if not isinstance(attrs, dict):
        raise PriceListError("(unknown)", "product.attributes", "is missing")
    itype = attrs.get("instanceType")
    if not isinstance(itype, str) or not itype:
        raise PriceListError("(unknown)", "product.attributes.instanceType", "is missing")
    region = _get(attrs, ["regionCode"], itype, "product.attributes")
    terms = _get(data, ["terms"], itype, "")
    if not isinstance(terms, dict):
        raise PriceListError(itype, "terms", "is not an object")
    vcpu_raw = attrs.get("vcpu")
    try:
        vcpus = int(vcpu_raw) if vcpu_raw not in (None, "", "NA") else None
    except (TypeError, ValueError):
        raise PriceListError(
            itype, "product.attributes.vcpu", f"is not a number ({vcpu_raw!r})"
        ) from None
    offer = Offer(
        instance_type=itype,
        region=str(region),
        capacity_status=str(attrs.get("capacitystatus", "Used")),
        sku=str(product.get("sku", "")),
        vcpus=vcpus,
        on_demand_usd=_on_demand(terms, itype),
        reserved=_reserved(terms, itype),
    )
    if offer.on_demand_usd is None and not offer.reserved:
        raise PriceListError(itype, "terms", "has neither OnDemand nor Reserved prices")
    return offer


def merge_offers(offers: list[Offer]) -> dict[str, InstancePrice]:
    """One InstancePrice per instance type from the ``capacitystatus=Used`` offers.

    Two different Used offers for the same type and region are an error (the filters were too
    loose): guessing which one applies would make the report quietly wrong.
    """
    by_type: dict[str, Offer] = {}
    for offer in offers:
        if offer.capacity_status != "Used":
            continue  # UnusedCapacityReservation / AllocatedHost rows duplicate the type
        seen = by_type.get(offer.instance_type)
        if seen is None:
            by_type[offer.instance_type] = offer
        elif (seen.on_demand_usd, seen.reserved) != (offer.on_demand_usd, offer.reserved):
            raise PriceListError(
                offer.instance_type,
                "product.sku",
                f"has two different offers ({seen.sku}, {offer.sku}) in {offer.region}; "
                "narrow the filters (operatingSystem, tenancy, preInstalledSw, licenseModel)",
            )
    return {
        itype: InstancePrice(
            vcpus=o.vcpus,
            on_demand_usd=o.on_demand_usd,
            reserved=o.reserved,
            sources=["aws-price-list"],
        )
        for itype, o in by_type.items()
    }
