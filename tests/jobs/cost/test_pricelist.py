"""Parsing the Price List API's PriceList strings: on-demand and standard reserved terms,
capacity-status duplicates, and every missing or malformed field named with its instance
type."""

import json

import pytest

from jobs.cost.pricelist import PriceListError, merge_offers, parse_offer
from tests.jobs.cost.samples import P5_RESERVED, as_string, first, product


def parse(entry):
    return parse_offer(as_string(entry) if isinstance(entry, dict) else entry, as_of="2026-11-27")


def test_on_demand_and_reserved_terms():
    offer = parse(product(reserved=P5_RESERVED))
    assert offer.instance_type == "p5.48xlarge" and offer.region == "us-east-1"
    assert offer.vcpus == 192
    p = offer.prices
    assert (
        p["on-demand"].hourly_usd == pytest.approx(55.04) and p["on-demand"].as_of == "2026-11-27"
    )
    # the convertible term is left out; effective = upfront / (years * 8760) + hourly
    assert set(p) - {"on-demand"} == {
        "RI 1yr No Upfront",
        "RI 1yr All Upfront",
        "RI 3yr Partial Upfront",
        "RI 3yr All Upfront",
    }
    assert per_hour(p["RI 1yr No Upfront"], 1) == pytest.approx(40.0)
    assert p["RI 1yr All Upfront"].upfront_usd == pytest.approx(306600)
    assert per_hour(p["RI 1yr All Upfront"], 1) == pytest.approx(35.0)
    # 262800 / (3 * 8760) + 10 = 10 + 10
    assert per_hour(p["RI 3yr Partial Upfront"], 3) == pytest.approx(20.0)
    assert per_hour(p["RI 3yr All Upfront"], 3) == pytest.approx(20.0)
    assert {x.source for x in p.values()} == {"aws-price-list"}


def test_capacity_duplicates_are_dropped_and_real_conflicts_refused():
    used = product(reserved=P5_RESERVED)
    unused = product(on_demand="99.0", sku="UNUSEDCAPRES0001", capacity="UnusedCapacityReservation")
    host = product(on_demand="0.0", sku="ALLOCATEDHOST001", capacity="AllocatedHost")
    prices = merge_offers([parse(e) for e in (unused, used, host)])
    assert list(prices) == ["p5.48xlarge"]
    assert prices["p5.48xlarge"].prices["on-demand"].hourly_usd == pytest.approx(55.04)
    assert merge_offers([parse(used), parse(used)])["p5.48xlarge"].vcpus == 192
    other = product(on_demand="60.0", sku="SECONDUSEDOFFER1")
    with pytest.raises(PriceListError, match=r"p5\.48xlarge: product\.sku has two different"):
        merge_offers([parse(used), parse(other)])


def _on_demand_dim(entry):
    return first(first(entry["terms"]["OnDemand"])["priceDimensions"])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e["terms"].pop("OnDemand"), "terms has neither OnDemand nor Reserved"),
        (lambda e: e.pop("terms"), "terms is missing or invalid"),
        (lambda e: e["product"]["attributes"].pop("regionCode"), "attributes.regionCode is"),
        (lambda e: _on_demand_dim(e).pop("pricePerUnit"), "pricePerUnit is missing"),
        (lambda e: _on_demand_dim(e)["pricePerUnit"].update(USD="n/a"), "USD is missing or inv"),
        (lambda e: _on_demand_dim(e)["pricePerUnit"].update(USD="-1"), "greater than or equal"),
        (lambda e: _on_demand_dim(e).update(unit="Quantity"), "no hourly (unit Hrs)"),
        (lambda e: first(e["terms"]["OnDemand"]).update(priceDimensions={}), "at least 1 item"),
        (lambda e: e["product"]["attributes"].update(vcpu="lots"), "attributes.vcpu is"),
    ],
)
def test_malformed_fields_name_the_instance_type_and_field(mutate, field):
    entry = product(instance_type="g6e.12xlarge")
    mutate(entry)
    with pytest.raises(PriceListError) as err:
        parse(entry)
    assert err.value.instance_type == "g6e.12xlarge"
    assert "PriceList entry for g6e.12xlarge" in str(err.value)
    assert field in str(err.value)


def test_reserved_term_problems_are_named():
    entry = product(reserved=P5_RESERVED)
    first(entry["terms"]["Reserved"])["termAttributes"]["LeaseContractLength"] = "2yr"
    with pytest.raises(PriceListError, match=r"termAttributes has an unknown term '2yr No Up"):
        parse(entry)


def test_entries_that_are_not_json_or_lack_the_type():
    with pytest.raises(PriceListError, match=r"\(unknown\).*is not JSON"):
        parse('{"product": ')
    entry = product()
    entry["product"]["attributes"].pop("instanceType")
    with pytest.raises(PriceListError, match=r"\(unknown\).*instanceType is missing"):
        parse(json.dumps(entry))
    with pytest.raises(PriceListError, match="not a JSON object"):
        parse("[1, 2]")


def per_hour(price, years):
    """The effective rate over a term: upfront spread over its hours, plus the hourly."""
    return price.hourly_usd + price.upfront_usd / (years * 8760)
