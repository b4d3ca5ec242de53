"""The shipped price snapshot: it loads, every figure says its source and date, Reserved
Instances and Savings Plans are priced for every instance it maps (marked as estimates, with
their derivation), Capacity Block rates carry their date; a malformed book is refused by field."""

import json

import pytest

from cluster.config import ConfigError
from jobs.cost.instances import DEFAULT_CPU_INSTANCE
from jobs.cost.prices import OPTIONS, family, load_price_book, newest_book, term_years
from tests.jobs.cost.samples import REPO, SNAPSHOT

COMMITMENTS = [o for o in OPTIONS if term_years(o)]


def test_the_shipped_snapshot_is_the_newest_and_every_figure_has_a_source_and_a_date():
    assert newest_book(REPO / "data" / "pricing") == SNAPSHOT
    book = load_price_book(SNAPSHOT, "snapshot")
    assert book.as_of == "2026-08" and book.label().startswith("snapshot prices as of 2026-08")
    east = book.regions["us-east-1"]
    # the field notes' on-demand figures, verbatim
    for itype, usd in (("p5.48xlarge", 55.04), ("p5en.48xlarge", 63.296),
                       ("p4de.24xlarge", 27.44705), ("g6e.xlarge", 1.861)):  # fmt: skip
        assert east[itype].prices["on-demand"].hourly_usd == usd
    assert east[DEFAULT_CPU_INSTANCE].vcpus == 4 and east[DEFAULT_CPU_INSTANCE].gpu is None
    for region in book.regions.values():
        for inst in region.values():
            assert inst.facts_source in book.sources
            for price in inst.prices.values():
                assert price.source in book.sources and price.as_of, price
                if price.estimate:  # derived, not published: says how, and its source says so
                    assert book.sources[price.source].startswith("ESTIMATE")


def test_commitments_for_every_instance_as_estimates_with_their_derivation():
    book = load_price_book(SNAPSHOT, "snapshot")
    for itype, inst in book.regions["us-east-1"].items():
        assert set(COMMITMENTS) <= set(inst.prices), itype  # 3 families x 2 terms x 3 payments
        od = inst.prices["on-demand"].hourly_usd
        for option in COMMITMENTS:
            p = inst.prices[option]
            assert p.estimate and p.source == "estimate-commitments"
            # the payment option moves the same effective rate in time
            years = term_years(option)
            effective = p.hourly_usd + p.upfront_usd / (years * 8760)
            discount = {("RI", 1): 0.40, ("RI", 3): 0.60, ("EC2 Instance SP", 1): 0.40,
                        ("EC2 Instance SP", 3): 0.60, ("Compute SP", 1): 0.375,
                        ("Compute SP", 3): 0.55}[(family(option), years)]  # fmt: skip
            assert effective == pytest.approx(od * (1 - discount), rel=1e-5), (itype, option)
            assert (p.upfront_usd == 0) == option.endswith("No Upfront")
            assert (p.hourly_usd == 0) == option.endswith("All Upfront")
    assert any("ESTIMATES" in n and "pricing=live" in n for n in book.notes)


def test_capacity_block_rates_with_their_source_and_date():
    book = load_price_book(SNAPSHOT, "snapshot")
    blocks = {(region, itype): inst.prices["Capacity Block"]
              for region, types in book.regions.items() for itype, inst in types.items()
              if "Capacity Block" in inst.prices}  # fmt: skip
    assert {k: v.hourly_usd for k, v in blocks.items()} == {
        ("us-east-1", "p5.48xlarge"): 36.18,  # estimate: 55.04 x 41.61 / 63.296
        ("us-east-1", "p5en.48xlarge"): 41.61,  # 2026 report of AWS's raised rate
        ("us-east-2", "p5.48xlarge"): 36.18,
        ("us-east-2", "p4d.24xlarge"): 14.75,  # AWS's page before 2025-01-01
        ("us-west-2", "p4d.24xlarge"): 14.75,
    }
    assert blocks[("us-east-1", "p5.48xlarge")].hourly_usd == pytest.approx(
        55.04 * 41.61 / 63.296, abs=0.005
    )
    assert blocks[("us-east-1", "p5.48xlarge")].estimate
    assert "2025-01-01" in blocks[("us-west-2", "p4d.24xlarge")].as_of
    nvswitch = {
        t
        for t, i in book.regions["us-east-1"].items()
        if i.gpu and i.gpu.interconnect == "nvswitch"
    }
    assert nvswitch == {"p5.48xlarge", "p5en.48xlarge", "p4d.24xlarge", "p4de.24xlarge"}


def test_options_and_terms():
    assert len(OPTIONS) == 3 + 3 * 2 * 3  # on-demand, spot, blocks; 3 commitments x 2 x 3
    assert term_years("RI 3yr All Upfront") == 3 and term_years("Capacity Block") is None
    assert family("EC2 Instance SP 1yr No Upfront") == "EC2 Instance SP"


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
