"""The shipped price snapshot: it loads, says its date and sources, carries GPU facts for the
default equivalences, and marks what it does not know; a malformed book is refused by field."""

import json
from pathlib import Path

import pytest

from cluster.config import ConfigError
from jobs.cost.equivalence import DEFAULT_CPU_INSTANCE, DEFAULT_GPU_INSTANCES
from jobs.cost.prices import effective_hourly, load_price_book, newest_book, term_years

REPO = Path(__file__).resolve().parents[3]
SNAPSHOT = REPO / "data" / "pricing" / "aws-2026-08.json"


def test_the_shipped_snapshot_is_the_newest_and_complete():
    assert newest_book(REPO / "data" / "pricing") == SNAPSHOT
    book = load_price_book(SNAPSHOT, "snapshot")
    assert book.as_of == "2026-08" and book.source == "snapshot"
    assert book.label().startswith("snapshot prices as of 2026-08")
    prices = book.regions["us-east-1"]
    # the field notes' figures, verbatim
    assert prices["p5.48xlarge"].on_demand_usd == 55.04
    assert prices["p5en.48xlarge"].on_demand_usd == 63.296
    assert prices["p4de.24xlarge"].on_demand_usd == 27.44705
    assert prices["g6e.xlarge"].on_demand_usd == 1.861
    for model, itype in DEFAULT_GPU_INSTANCES.items():
        if model == "V100":
            assert itype not in prices  # no verified figure: absent, not guessed
            continue
        price = prices[itype]
        assert price.gpu is not None and price.gpu.count >= 1, itype
        assert price.on_demand_usd > 0 and price.sources, itype
        assert price.reserved == {}, "reserved prices are not in the snapshot"
    assert prices[DEFAULT_CPU_INSTANCE].vcpus == 4 and prices[DEFAULT_CPU_INSTANCE].gpu is None
    spot = prices["g6e.12xlarge"].spot
    assert spot.min_usd <= spot.median_usd and "before 2025-06" in spot.as_of
    assert prices["p5.48xlarge"].spot is None
    assert any("Reserved prices are not in this snapshot" in n for n in book.notes)


def test_effective_hourly_and_terms():
    assert effective_hourly(8760.0, 1.0, 1) == pytest.approx(2.0)
    assert effective_hourly(26280.0, 0.0, 3) == pytest.approx(1.0)
    assert term_years("3yr All Upfront") == 3
    with pytest.raises(ValueError, match="is not one of"):
        term_years("5yr No Upfront")


def _book(tmp_path, mutate):
    data = json.loads(SNAPSHOT.read_text())
    mutate(data)
    path = tmp_path / "aws-bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "field", "text"),
    [
        (lambda d: d.pop("as_of"), "as_of", "Field required"),
        (
            lambda d: d["regions"]["us-east-1"]["p5.48xlarge"].update(on_demand_usd=-5),
            "regions.us-east-1.p5.48xlarge.on_demand_usd",
            "greater than or equal to 0",
        ),
        (
            lambda d: d["regions"]["us-east-1"]["m7i.xlarge"].update(vcpu=4),
            "regions.us-east-1.m7i.xlarge.vcpu",
            "is not a known key",
        ),
        (
            lambda d: d["regions"]["us-east-1"]["p5.48xlarge"].update(
                reserved={
                    "2yr No Upfront": {"upfront_usd": 0, "hourly_usd": 1, "effective_hourly_usd": 1}
                }
            ),
            "regions.us-east-1.p5.48xlarge.reserved",
            "is not a reserved term",
        ),
        (
            lambda d: d["regions"]["us-east-1"]["p5.48xlarge"].update(sources=["nowhere"]),
            "regions.us-east-1.p5.48xlarge.sources",
            "is not a key of the book's sources",
        ),
    ],
)
def test_a_malformed_book_names_the_field(tmp_path, mutate, field, text):
    with pytest.raises(ConfigError) as err:
        load_price_book(_book(tmp_path, mutate), "snapshot")
    rendered = str(err.value)
    assert field in rendered and text in rendered


def test_not_json_or_missing(tmp_path):
    bad = tmp_path / "aws-x.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_price_book(bad, "snapshot")
    with pytest.raises(ConfigError, match="no such file"):
        load_price_book(tmp_path / "missing.json", "snapshot")
