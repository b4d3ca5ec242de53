"""The boto3 edge, offline: the pricing paginator through botocore's Stubber (exact params,
several pages), EC2 GPU facts and spot plumbing through moto, and the live -> cache ->
snapshot fallback."""

import datetime as dt
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from jobs.cost import aws
from jobs.cost.prices import load_price_book
from tests.jobs.cost.samples import P5_RESERVED, as_string, product

REPO = Path(__file__).resolve().parents[3]
SNAPSHOT = REPO / "data" / "pricing" / "aws-2026-08.json"
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def fake_credentials(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)


def expected_params(itype, region="us-east-1", token=None):
    params = {
        "ServiceCode": "AmazonEC2",
        "Filters": [
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": itype},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "licenseModel", "Value": "No License required"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        ],
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
    }
    if token:
        params["NextToken"] = token
    return params


def stubbed_pricing(pages_by_type):
    """A pricing client (us-east-1) answering get_products page by page, params checked."""
    client = boto3.client("pricing", region_name="us-east-1")
    stub = Stubber(client)
    for itype, pages in pages_by_type.items():
        for i, entries in enumerate(pages):
            response = {"FormatVersion": "aws_v1", "PriceList": entries}
            if i < len(pages) - 1:
                response["NextToken"] = f"{itype}-page-{i + 1}"
            token = f"{itype}-page-{i}" if i else None
            stub.add_response("get_products", response, expected_params(itype, token=token))
    stub.activate()
    return client, stub


def test_get_products_walks_every_page_with_exact_params(fake_credentials):
    pages = [
        [as_string(product(reserved=P5_RESERVED))],
        [
            as_string(
                product(
                    on_demand="80.0", sku="UNUSEDCAPRES0001", capacity="UnusedCapacityReservation"
                )
            )
        ],
        [],
    ]
    client, stub = stubbed_pricing({"p5.48xlarge": pages})
    entries = aws.get_products(client, "p5.48xlarge", "us-east-1")
    stub.assert_no_pending_responses()
    assert len(entries) == 2 and all(isinstance(e, str) for e in entries)


class FakeSession:
    """boto3 session stand-in: the stubbed pricing client, moto's EC2."""

    def __init__(self, pricing):
        self.pricing = pricing

    def client(self, name, region_name):
        return self.pricing if name == "pricing" else boto3.client(name, region_name=region_name)


def test_pull_live_merges_prices_gpu_facts_and_spot(fake_credentials):
    pricing, stub = stubbed_pricing(
        {
            "g6e.12xlarge": [
                [as_string(product("g6e.12xlarge", "10.4926400000", sku="G6E12XLARGESKU01"))]
            ],
            "m7i.xlarge": [
                [as_string(product("m7i.xlarge", "0.2016000000", sku="M7IXLARGESKU0001", gpu="0"))],
                [],
            ],
            "p5.48xlarge": [
                [as_string(product(reserved=P5_RESERVED))],
                [
                    as_string(
                        product(
                            on_demand="80.0",
                            sku="UNUSEDCAPRES0001",
                            capacity="UnusedCapacityReservation",
                        )
                    )
                ],
            ],
        }
    )
    with mock_aws():
        book = aws.pull_live(
            ["p5.48xlarge", "g6e.12xlarge", "m7i.xlarge"],
            ["us-east-1"],
            session=FakeSession(pricing),
            now=NOW,
        )
    stub.assert_no_pending_responses()
    assert book.source == "live" and book.as_of.startswith("2026-11-27")
    p5 = book.get("us-east-1", "p5.48xlarge")
    assert p5.on_demand_usd == pytest.approx(55.04)
    assert p5.gpu.name == "H100" and p5.gpu.count == 8 and p5.gpu.memory_mib == 81920
    assert p5.reserved["3yr All Upfront"].effective_hourly_usd == pytest.approx(20.0)
    g6e = book.get("us-east-1", "g6e.12xlarge")
    assert g6e.gpu.name == "L40S" and g6e.gpu.count == 4 and g6e.vcpus == 48
    m7i = book.get("us-east-1", "m7i.xlarge")
    assert m7i.gpu is None and m7i.vcpus == 4
    # moto's spot prices are fake (0.00001): only the plumbing is checked
    assert m7i.spot is not None and m7i.spot.zones and m7i.spot.source == "aws-spot-history"
    assert m7i.spot.min_usd <= m7i.spot.median_usd


def test_instance_facts_skip_types_moto_does_not_know(fake_credentials, caplog):
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        facts = aws.instance_facts(ec2, ["p4de.24xlarge", "p3.2xlarge", "g4dn.xlarge"])
    assert set(facts) == {"p4de.24xlarge", "g4dn.xlarge"}
    vcpus, _, gpu = facts["p4de.24xlarge"]
    assert vcpus == 96 and gpu.name == "A100" and gpu.memory_mib == 81920
    assert "does not know p3.2xlarge" in caplog.text


def test_spot_prices_take_the_latest_per_zone():
    class FakeEC2:
        def get_paginator(self, name):
            assert name == "describe_spot_price_history"
            return self

        def paginate(self, **params):
            assert params == {
                "ProductDescriptions": ["Linux/UNIX"],
                "InstanceTypes": ["g6e.12xlarge"],
                "StartTime": NOW,
            }
            old, new = NOW - dt.timedelta(hours=2), NOW - dt.timedelta(minutes=5)
            rec = {"InstanceType": "g6e.12xlarge", "ProductDescription": "Linux/UNIX"}
            yield {
                "SpotPriceHistory": [
                    {**rec, "AvailabilityZone": "us-east-1a", "SpotPrice": "9.0", "Timestamp": old},
                    {**rec, "AvailabilityZone": "us-east-1a", "SpotPrice": "4.0", "Timestamp": new},
                    {**rec, "AvailabilityZone": "us-east-1b", "SpotPrice": "5.0", "Timestamp": new},
                ]
            }
            yield {
                "SpotPriceHistory": [
                    {**rec, "AvailabilityZone": "us-east-1c", "SpotPrice": "7.0", "Timestamp": new}
                ]
            }

    spot = aws.spot_prices(FakeEC2(), ["g6e.12xlarge"], NOW)["g6e.12xlarge"]
    assert spot.zones == {"us-east-1a": 4.0, "us-east-1b": 5.0, "us-east-1c": 7.0}
    assert spot.min_usd == 4.0 and spot.median_usd == 5.0


def test_no_credentials_is_a_clear_fallback(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
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
