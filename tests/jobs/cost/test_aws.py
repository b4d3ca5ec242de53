"""The boto3 edge, offline, every call through botocore's Stubber (exact params, responses
checked against the services' models): Price List on-demand and reserved terms over several
pages, Savings Plans offering rates, Capacity Block offerings, spot history, instance facts,
a whole live pull, and the live -> cache -> snapshot fallback."""

import datetime as dt
import json

import boto3
import pytest
from botocore.stub import Stubber

from jobs.cost import aws
from jobs.cost.prices import load_price_book
from tests.jobs.cost.samples import (
    P5_RESERVED,
    SNAPSHOT,
    as_string,
    block_offering,
    instance_type,
    product,
    sp_rate,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
AS_OF = NOW.isoformat(timespec="seconds")
TYPES = ["g6e.12xlarge", "m7i.xlarge", "p5.48xlarge"]


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)


def stubbed(service, region="us-east-1"):
    client = boto3.client(service, region_name=region)
    return client, Stubber(client)


def products_params(itype, token=None):
    params = {
        "ServiceCode": "AmazonEC2",
        "Filters": [
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": itype},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "licenseModel", "Value": "No License required"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        ],
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
    }
    return params | ({"NextToken": token} if token else {})


def add_products(stub, itype, pages):
    for i, entries in enumerate(pages):
        response = {"FormatVersion": "aws_v1", "PriceList": entries}
        if i < len(pages) - 1:
            response["NextToken"] = f"{itype}-page-{i + 1}"
        stub.add_response(
            "get_products", response, products_params(itype, i and f"{itype}-page-{i}")
        )


def sp_params(types, token=None):
    params = {
        "savingsPlanTypes": ["EC2Instance", "Compute"],
        "products": ["EC2"],
        "serviceCodes": ["AmazonEC2"],
        "filters": [
            {"name": "region", "values": ["us-east-1"]},
            {"name": "instanceType", "values": types},
            {"name": "productDescription", "values": ["Linux/UNIX"]},
            {"name": "tenancy", "values": ["shared"]},
        ],
        "maxResults": 1000,
    }
    return params | ({"nextToken": token} if token else {})


def test_get_products_walks_every_page_with_exact_params():
    client, stub = stubbed("pricing")
    unused = product(on_demand="80.0", sku="UNUSEDCAPRES0001", capacity="UnusedCapacityReservation")
    add_products(
        stub, "p5.48xlarge", [[as_string(product(reserved=P5_RESERVED))], [as_string(unused)], []]
    )
    with stub:
        entries = aws.get_products(client, "p5.48xlarge", "us-east-1")
    stub.assert_no_pending_responses()
    assert len(entries) == 2 and all(isinstance(e, str) for e in entries)


def test_savings_plan_rates_per_term_and_payment_over_pages():
    client, stub = stubbed("savingsplans")
    first = [
        sp_rate("p5.48xlarge", "EC2Instance", 3, "All Upfront", "20.0000000000"),
        sp_rate("p5.48xlarge", "EC2Instance", 1, "No Upfront", "36.1000000000"),
        # the dedicated-host rate of the same type is another usage type: left out
        sp_rate("p5.48xlarge", "EC2Instance", 1, "No Upfront", "99.0", usage="HostUsage:p5"),
    ]
    second = [sp_rate("p5.48xlarge", "Compute", 3, "Partial Upfront", "30.0000000000")]
    stub.add_response(
        "describe_savings_plans_offering_rates",
        {"searchResults": first, "nextToken": "page-2"},
        sp_params(["p5.48xlarge"]),
    )
    stub.add_response(
        "describe_savings_plans_offering_rates",
        {"searchResults": second},
        sp_params(["p5.48xlarge"], "page-2"),
    )
    with stub:
        rates = aws.savings_plan_prices(client, ["p5.48xlarge"], "us-east-1", AS_OF)["p5.48xlarge"]
    stub.assert_no_pending_responses()
    assert set(rates) == {
        "EC2 Instance SP 3yr All Upfront",
        "EC2 Instance SP 1yr No Upfront",
        "Compute SP 3yr Partial Upfront",
    }
    all_up = rates["EC2 Instance SP 3yr All Upfront"]  # the whole commitment paid at the start
    assert (all_up.hourly_usd, all_up.upfront_usd) == (0.0, pytest.approx(20.0 * 3 * 8760))
    assert per_hour(all_up, 3) == pytest.approx(20.0)
    partial = rates["Compute SP 3yr Partial Upfront"]
    assert partial.hourly_usd == 15.0 and partial.upfront_usd == pytest.approx(15.0 * 3 * 8760)
    assert rates["EC2 Instance SP 1yr No Upfront"].hourly_usd == 36.1
    assert all_up.source == "aws-savings-plans" and all_up.as_of == AS_OF


def test_capacity_blocks_for_a_duration_and_types_without_blocks():
    client, stub = stubbed("ec2")
    start = dt.datetime(2026, 12, 1, 11, 30, tzinfo=dt.UTC)
    # 7 days x 24 h = 168 h: fees of 6,607.44 and 7,000 are 39.33 and 41.667 an hour
    stub.add_response(
        "describe_capacity_block_offerings",
        {
            "CapacityBlockOfferings": [
                block_offering("p5.48xlarge", 168, "6607.44", "us-east-1a", start)
            ],
            "NextToken": "more",
        },
        {"InstanceType": "p5.48xlarge", "InstanceCount": 1, "CapacityDurationHours": 168},
    )
    stub.add_response(
        "describe_capacity_block_offerings",
        {
            "CapacityBlockOfferings": [
                block_offering("p5.48xlarge", 168, "7000.00", "us-east-1b", start),
                block_offering("p5.48xlarge", 168, "6720.00", "us-east-1c", start),
            ]
        },
        {
            "InstanceType": "p5.48xlarge",
            "InstanceCount": 1,
            "CapacityDurationHours": 168,
            "NextToken": "more",
        },
    )
    stub.add_client_error(
        "describe_capacity_block_offerings",
        service_error_code="InvalidParameterValue",
        service_message="The instance type g6e.12xlarge is not supported for Capacity Blocks",
        expected_params={
            "InstanceType": "g6e.12xlarge",
            "InstanceCount": 1,
            "CapacityDurationHours": 168,
        },
    )
    with stub:
        blocks = aws.capacity_block_prices(client, ["p5.48xlarge", "g6e.12xlarge"], 7, AS_OF)
    stub.assert_no_pending_responses()
    assert list(blocks) == ["p5.48xlarge"]
    block = blocks["p5.48xlarge"]["Capacity Block"]
    assert block.hourly_usd == pytest.approx(6720.0 / 168)  # the median of three
    assert "7-day block, median of 3 offerings (lowest $39.33" in block.note


def test_spot_prices_take_the_latest_per_zone():
    client, stub = stubbed("ec2")
    old, new = NOW - dt.timedelta(hours=2), NOW - dt.timedelta(minutes=5)
    rec = {"InstanceType": "g6e.12xlarge", "ProductDescription": "Linux/UNIX"}
    page = [
        {**rec, "AvailabilityZone": "us-east-1a", "SpotPrice": "9.000000", "Timestamp": old},
        {**rec, "AvailabilityZone": "us-east-1a", "SpotPrice": "4.000000", "Timestamp": new},
        {**rec, "AvailabilityZone": "us-east-1b", "SpotPrice": "5.000000", "Timestamp": new},
        {**rec, "AvailabilityZone": "us-east-1c", "SpotPrice": "7.000000", "Timestamp": new},
    ]
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": page},
        {
            "ProductDescriptions": ["Linux/UNIX"],
            "InstanceTypes": ["g6e.12xlarge"],
            "StartTime": NOW,
        },
    )
    with stub:
        spot = aws.spot_prices(client, ["g6e.12xlarge"], NOW)["g6e.12xlarge"]["spot"]
    assert spot.hourly_usd == 5.0 and "median of 3 zones (lowest $4 an" in spot.note


class FakeSession:
    """boto3 session stand-in handing out stubbed clients."""

    def __init__(self, clients):
        self.clients = clients

    def client(self, name, region_name):
        assert region_name == "us-east-1"
        return self.clients[name]


def test_a_live_pull_merges_every_option_and_the_gpu_facts():
    pricing, pricing_stub = stubbed("pricing")
    add_products(
        pricing_stub,
        "g6e.12xlarge",
        [[as_string(product("g6e.12xlarge", "10.4926400000", sku="G6E12XLARGESKU01"))]],
    )
    add_products(
        pricing_stub,
        "m7i.xlarge",
        [[as_string(product("m7i.xlarge", "0.2016000000", sku="M7IXLARGESKU0001", gpu="0"))], []],
    )
    add_products(pricing_stub, "p5.48xlarge", [[as_string(product(reserved=P5_RESERVED))]])
    sp, sp_stub = stubbed("savingsplans")
    sp_stub.add_response(
        "describe_savings_plans_offering_rates",
        {"searchResults": [sp_rate("p5.48xlarge", "Compute", 1, "No Upfront", "43.0")]},
        sp_params(TYPES),
    )
    ec2, ec2_stub = stubbed("ec2")
    ec2_stub.add_response(
        "describe_instance_types",
        {
            "InstanceTypes": [
                instance_type("p5.48xlarge", 192, 2097152, ("H100", 8, 81920)),
                instance_type("g6e.12xlarge", 48, 393216, ("L40S", 4, 45776)),
                instance_type("m7i.xlarge", 4, 16384, None),
            ]
        },
        {"InstanceTypes": TYPES},
    )
    for itype in TYPES:
        offers = (
            [block_offering(itype, 168, "6607.44", "us-east-1a", NOW)] if itype[0] == "p" else []
        )
        ec2_stub.add_response(
            "describe_capacity_block_offerings",
            {"CapacityBlockOfferings": offers},
            {"InstanceType": itype, "InstanceCount": 1, "CapacityDurationHours": 168},
        )
    ec2_stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                {
                    "InstanceType": "m7i.xlarge",
                    "ProductDescription": "Linux/UNIX",
                    "AvailabilityZone": "us-east-1a",
                    "SpotPrice": "0.088800",
                    "Timestamp": NOW,
                }
            ]
        },
        {"ProductDescriptions": ["Linux/UNIX"], "InstanceTypes": TYPES, "StartTime": NOW},
    )
    session = FakeSession({"pricing": pricing, "savingsplans": sp, "ec2": ec2})
    with pricing_stub, sp_stub, ec2_stub:
        book = aws.pull_live(TYPES, ["us-east-1"], block_days=7, session=session, now=NOW)
    for stub in (pricing_stub, sp_stub, ec2_stub):
        stub.assert_no_pending_responses()
    assert book.source == "live" and book.as_of == AS_OF
    p5 = book.get("us-east-1", "p5.48xlarge")
    assert set(p5.prices) == {
        "on-demand",
        "RI 1yr No Upfront",
        "RI 1yr All Upfront",
        "RI 3yr Partial Upfront",
        "RI 3yr All Upfront",
        "Compute SP 1yr No Upfront",
        "Capacity Block",
    }
    assert p5.prices["on-demand"].hourly_usd == pytest.approx(55.04)
    ri = p5.prices["RI 3yr All Upfront"]
    assert ri.hourly_usd + ri.upfront_usd / (3 * 8760) == pytest.approx(20.0)
    assert p5.prices["Capacity Block"].hourly_usd == pytest.approx(39.33)
    assert p5.gpu.name == "H100" and p5.gpu.count == 8 and p5.facts_source == "aws-ec2"
    assert p5.gpu.interconnect == "nvswitch"  # the P family; the G family is PCIe
    assert book.get("us-east-1", "g6e.12xlarge").gpu.interconnect == "pcie"
    m7i = book.get("us-east-1", "m7i.xlarge")
    assert m7i.gpu is None and m7i.vcpus == 4 and m7i.prices["spot"].hourly_usd == 0.0888
    assert set(book.get("us-east-1", "g6e.12xlarge").prices) == {"on-demand"}
    # every price names a source the book explains
    assert {p.source for t in TYPES for p in book.get("us-east-1", t).prices.values()} <= set(
        book.sources
    )


def test_no_credentials_is_a_clear_fallback(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(aws.PricingUnavailable, match="NoCredentialsError"):
        aws.pull_live(["m7i.xlarge"], ["us-east-1"], now=NOW)
    book = aws.resolve_prices(
        "live", ["m7i.xlarge"], "us-east-1", snapshot=SNAPSHOT, cache_dir=tmp_path / "cache"
    )
    assert book.source == "snapshot"
    assert "live pull failed (NoCredentialsError" in book.fallback
    assert "no cached prices under" in book.fallback
    assert "snapshot prices as of 2026-08" in book.label()


def test_live_pull_is_cached_and_the_cache_is_the_next_fallback(tmp_path):
    snap = load_price_book(SNAPSHOT, "snapshot")
    live = snap.model_copy(update={"source": "live", "as_of": "2026-11-27T12:00:00+00:00"})
    cache = tmp_path / "cache"
    book = aws.resolve_prices(
        "live",
        ["m7i.xlarge"],
        "us-east-1",
        snapshot=SNAPSHOT,
        cache_dir=cache,
        puller=lambda types, regions: live,
    )
    assert book.source == "live" and book.fallback is None
    assert (cache / "aws-2026-11-27.json").is_file()

    def offline(types, regions):
        raise aws.PricingUnavailable("EndpointConnectionError: could not connect")

    again = aws.resolve_prices(
        "live", ["m7i.xlarge"], "us-east-1", snapshot=SNAPSHOT, cache_dir=cache, puller=offline
    )
    assert again.source == "cache" and again.as_of.startswith("2026-11-27")
    assert again.get("us-east-1", "p5.48xlarge").prices["Capacity Block"].hourly_usd == 36.18
    assert "live pull failed (EndpointConnectionError" in again.fallback
    # a cache without the instance the report needs is not used
    lacking = aws.resolve_prices(
        "cache", ["p3.2xlarge"], "us-east-1", snapshot=SNAPSHOT, cache_dir=cache
    )
    assert lacking.source == "snapshot" and "lacks p3.2xlarge" in lacking.fallback
    (cache / "aws-2026-11-28.json").write_text(json.dumps({"regions": "broken"}))
    broken = aws.resolve_prices(
        "cache", ["m7i.xlarge"], "us-east-1", snapshot=SNAPSHOT, cache_dir=cache
    )
    assert broken.source == "snapshot" and "is unreadable" in broken.fallback


def test_instance_facts_skip_types_aws_does_not_know(caplog):
    client, stub = stubbed("ec2")
    both = ["p5.48xlarge", "p9.fake"]
    unknown = "The following supplied instance types do not exist: [p9.fake]"
    stub.add_client_error(
        "describe_instance_types",
        "InvalidInstanceType",
        unknown,
        expected_params={"InstanceTypes": both},
    )
    stub.add_response(
        "describe_instance_types",
        {"InstanceTypes": [instance_type("p5.48xlarge", 192, 2097152, ("H100", 8, 81920))]},
        {"InstanceTypes": ["p5.48xlarge"]},
    )
    stub.add_client_error(
        "describe_instance_types",
        "InvalidInstanceType",
        unknown,
        expected_params={"InstanceTypes": ["p9.fake"]},
    )
    with stub:
        facts = aws.instance_facts(client, both)
    stub.assert_no_pending_responses()
    assert list(facts) == ["p5.48xlarge"] and facts["p5.48xlarge"]["gpu"].memory_mib == 81920
    assert "describe_instance_types does not know p9.fake" in caplog.text


def per_hour(price, years):
    """The effective rate over a term: upfront spread over its hours, plus the hourly."""
    return price.hourly_usd + price.upfront_usd / (years * 8760)
