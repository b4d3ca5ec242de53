"""Parsing the Price List API's PriceList strings: on-demand and reserved terms, duplicates,
and every missing or malformed field named with its instance type."""

import json

import pytest

from jobs.cost.pricelist import PriceListError, merge_offers, parse_offer
from tests.jobs.cost.samples import P5_RESERVED, as_string, first, product


def test_on_demand_and_reserved_terms():
    offer = parse_offer(as_string(product(reserved=P5_RESERVED)))
    assert offer.instance_type == "p5.48xlarge" and offer.region == "us-east-1"
    assert offer.on_demand_usd == pytest.approx(55.04)
    assert offer.vcpus == 192
    # the convertible term is left out; effective = upfront / (years * 8760) + hourly
    assert set(offer.reserved) == {
        "1yr No Upfront",
        "1yr All Upfront",
        "3yr Partial Upfront",
        "3yr All Upfront",
    }
    assert offer.reserved["1yr No Upfront"].effective_hourly_usd == pytest.approx(40.0)
    assert offer.reserved["1yr All Upfront"].upfront_usd == pytest.approx(306600)
    assert offer.reserved["1yr All Upfront"].effective_hourly_usd == pytest.approx(35.0)
    # 262800 / (3 * 8760) + 10 = 10 + 10
    assert offer.reserved["3yr Partial Upfront"].effective_hourly_usd == pytest.approx(20.0)
    assert offer.reserved["3yr All Upfront"].effective_hourly_usd == pytest.approx(20.0)


def test_capacity_duplicates_are_dropped_and_real_conflicts_refused():
    used = product(reserved=P5_RESERVED)
    unused = product(on_demand="99.0", sku="UNUSEDCAPRES0001", capacity="UnusedCapacityReservation")
    host = product(on_demand="0.0", sku="ALLOCATEDHOST001", capacity="AllocatedHost")
    prices = merge_offers([parse_offer(as_string(e)) for e in (unused, used, host)])
    assert list(prices) == ["p5.48xlarge"]
    assert prices["p5.48xlarge"].on_demand_usd == pytest.approx(55.04)
    same = merge_offers([parse_offer(as_string(used)), parse_offer(as_string(used))])
    assert same["p5.48xlarge"].on_demand_usd == pytest.approx(55.04)
    other = product(on_demand="60.0", sku="SECONDUSEDOFFER1")
    with pytest.raises(PriceListError, match=r"p5\.48xlarge: product\.sku has two different"):
        merge_offers([parse_offer(as_string(used)), parse_offer(as_string(other))])


def _on_demand_dim(entry):
    return first(first(entry["terms"]["OnDemand"])["priceDimensions"])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e["terms"].pop("OnDemand"), "terms has neither OnDemand nor Reserved"),
        (lambda e: e.pop("terms"), "terms is missing"),
        (lambda e: e["product"]["attributes"].pop("regionCode"), "regionCode is missing"),
        (lambda e: _on_demand_dim(e).pop("pricePerUnit"), "pricePerUnit.USD is missing"),
        (lambda e: _on_demand_dim(e)["pricePerUnit"].update(USD="n/a"), "is not a number"),
        (lambda e: _on_demand_dim(e)["pricePerUnit"].update(USD="-1"), "is negative"),
        (lambda e: _on_demand_dim(e).update(unit="Quantity"), "no hourly (unit Hrs)"),
        (lambda e: first(e["terms"]["OnDemand"]).update(priceDimensions={}), "is empty"),
        (lambda e: e["product"]["attributes"].update(vcpu="lots"), "vcpu is not a number"),
    ],
)
def test_malformed_fields_name_the_instance_type_and_field(mutate, field):
    entry = product(instance_type="g6e.12xlarge")
    mutate(entry)
    with pytest.raises(PriceListError) as err:
        parse_offer(as_string(entry))
    assert err.value.instance_type == "g6e.12xlarge"
    assert "PriceList entry for g6e.12xlarge" in str(err.value)
    assert field in str(err.value)


def test_reserved_term_problems_are_named():
    entry = product(reserved=P5_RESERVED)
    term = first(entry["terms"]["Reserved"])
    term["termAttributes"].pop("LeaseContractLength")
    with pytest.raises(PriceListError, match=r"termAttributes\.LeaseContractLength is missing"):
        parse_offer(entry)
    entry = product(reserved=P5_RESERVED)
    first(entry["terms"]["Reserved"])["termAttributes"]["LeaseContractLength"] = "2yr"
    with pytest.raises(PriceListError, match="unknown term '2yr No Upfront'"):
        parse_offer(entry)


def test_entries_that_are_not_json_or_lack_the_type():
    with pytest.raises(PriceListError, match=r"\(unknown\).*is not JSON"):
        parse_offer('{"product": ')
    entry = product()
    entry["product"]["attributes"].pop("instanceType")
    with pytest.raises(PriceListError, match=r"instanceType is missing"):
        parse_offer(json.dumps(entry))
    with pytest.raises(PriceListError, match="not a JSON object"):
        parse_offer("[1, 2]")
