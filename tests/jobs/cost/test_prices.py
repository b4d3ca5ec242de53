"""The shipped price snapshot: it loads, says the date and source of every figure, carries the
Capacity Block rates and the GPU facts of the default equivalences, and leaves out what it does
not know; a malformed book is refused by field."""

import json

import pytest

from cluster.config import ConfigError
from jobs.cost.equivalence import DEFAULT_CPU_INSTANCE, DEFAULT_GPU_INSTANCES
from jobs.cost.prices import OPTIONS, Price, family, load_price_book, newest_book, term_years
from tests.jobs.cost.samples import REPO, SNAPSHOT


def test_the_shipped_snapshot_is_the_newest_and_complete():
    assert newest_book(REPO / "data" / "pricing") == SNAPSHOT
    book = load_price_book(SNAPSHOT, "snapshot")
    assert book.as_of == "2026-08" and book.source == "snapshot"
    assert book.label().startswith("snapshot prices as of 2026-08")
    east = book.regions["us-east-1"]
    # the field notes' figures, verbatim
    for itype, usd in (
        ("p5.48xlarge", 55.04),
        ("p5en.48xlarge", 63.296),
        ("p4de.24xlarge", 27.44705),
        ("g6e.xlarge", 1.861),
    ):
        assert east[itype].prices["on-demand"].hourly_usd == usd
    for model, itype in DEFAULT_GPU_INSTANCES.items():
        if model == "V100":
            assert itype not in east  # no verified figure: absent, not guessed
            continue
        assert east[itype].gpu is not None and east[itype].gpu.count >= 1, itype
        assert east[itype].prices["on-demand"].hourly_usd > 0, itype
    assert east[DEFAULT_CPU_INSTANCE].vcpus == 4 and east[DEFAULT_CPU_INSTANCE].gpu is None
    # every figure says where it came from and when
    for region in book.regions.values():
        for inst in region.values():
            assert inst.facts_source in book.sources
            for price in inst.prices.values():
                assert price.source in book.sources and price.as_of
    # no figure without a source: no reserved instance or savings plan price offline
    assert {family(o) for r in book.regions.values() for i in r.values() for o in i.prices} == {
        "on-demand",
        "spot",
        "Capacity Block",
    }
    assert any(
        "Reserved Instances and Savings Plans are not in this snapshot" in n and "pricing=live" in n
        for n in book.notes
    )


def test_the_snapshot_holds_the_capacity_block_rates_with_their_date():
    book = load_price_book(SNAPSHOT, "snapshot")
    blocks = {
        (region, itype): inst.prices["Capacity Block"]
        for region, types in book.regions.items()
        for itype, inst in types.items()
        if "Capacity Block" in inst.prices
    }
    # AWS's Capacity Blocks pricing page (project field notes): effective instance rates
    assert {k: v.hourly_usd for k, v in blocks.items()} == {
        ("us-east-1", "p5.48xlarge"): 39.33,
        ("us-east-2", "p5.48xlarge"): 39.33,
        ("us-east-2", "p4d.24xlarge"): 14.75,
        ("us-west-2", "p4d.24xlarge"): 14.75,
    }
    for price in blocks.values():
        assert "2025-01-01" in price.as_of and price.source == "aws-capacity-blocks-page"
        assert "Capacity Blocks" in book.sources[price.source]
    spot = book.regions["us-east-1"]["g6e.12xlarge"].prices["spot"]
    assert "before 2025-06" in spot.as_of and "lowest $4.236" in spot.note


def test_options_terms_and_effective_price():
    assert len(OPTIONS) == 3 + 3 * 2 * 3  # on-demand, spot, blocks; 3 commitments x 2 x 3
    assert term_years("RI 3yr All Upfront") == 3 and term_years("Capacity Block") is None
    assert family("EC2 Instance SP 1yr No Upfront") == "EC2 Instance SP"
    price = Price(hourly_usd=1.0, upfront_usd=8760.0, source="s", as_of="t")
    assert price.effective_hourly("RI 1yr Partial Upfront") == pytest.approx(2.0)
    assert price.effective_hourly("RI 3yr Partial Upfront") == pytest.approx(1 + 1 / 3)


def _book(tmp_path, mutate):
    data = json.loads(SNAPSHOT.read_text())
    mutate(data)
    path = tmp_path / "aws-bad.json"
    path.write_text(json.dumps(data))
    return path


def _p5(d):
    return d["regions"]["us-east-1"]["p5.48xlarge"]


@pytest.mark.parametrize(
    ("mutate", "field", "text"),
    [
        (lambda d: d.pop("as_of"), "as_of", "Field required"),
        (
            lambda d: _p5(d)["prices"]["on-demand"].update(hourly_usd=-5),
            "regions.us-east-1.p5.48xlarge.prices.on-demand.hourly_usd",
            "greater than or equal",
        ),
        (lambda d: _p5(d).update(vcpu=4), "regions.us-east-1.p5.48xlarge.vcpu", "not a known key"),
        (
            lambda d: _p5(d)["prices"].update(
                {"RI 2yr No Upfront": {"hourly_usd": 1, "source": "skypilot-2026", "as_of": "x"}}
            ),
            "regions.us-east-1.p5.48xlarge.prices.RI 2yr No Upfront",
            "Input should be 'on-demand'",
        ),
        (
            lambda d: _p5(d)["prices"]["on-demand"].update(source="nowhere"),
            "prices.on-demand.source",
            "is not a key of the book's sources",
        ),
        (lambda d: _p5(d)["prices"]["on-demand"].pop("as_of"), "as_of", "Field required"),
    ],
)
def test_a_malformed_book_names_the_field(tmp_path, mutate, field, text):
    with pytest.raises(ConfigError) as err:
        load_price_book(_book(tmp_path, mutate), "snapshot")
    assert field in str(err.value) and text in str(err.value)


def test_not_json_or_missing(tmp_path):
    bad = tmp_path / "aws-x.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_price_book(bad, "snapshot")
    with pytest.raises(ConfigError, match="no such file"):
        load_price_book(tmp_path / "missing.json", "snapshot")
