"""The whole analysis with every price option present (as a live pull gives them): reserved
terms are paid every hour with their upfront at the start of each term, on-demand and spot only
for busy hours; the report renders all of it."""

import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from cluster.config import load_config
from cluster.ledger import Allocation, Ledger
from jobs.cost.config import CostConfig
from jobs.cost.report import write_report
from jobs.cost.run import analyze, preflight

REPO = Path(__file__).resolve().parents[3]
NOW = dt.datetime(2026, 11, 27, 12, 0)


def full_book(tmp_path: Path) -> Path:
    """The shipped snapshot plus test reserved and spot prices (made-up numbers)."""
    data = json.loads((REPO / "data/pricing/aws-2026-08.json").read_text())
    prices = data["regions"]["us-east-1"]
    for itype, od in (("p5.48xlarge", 55.04), ("g6e.12xlarge", 10.49264), ("m7i.xlarge", 0.2016)):
        reserved = {}
        for term, years, share, upfront_share in (
            ("1yr No Upfront", 1, 0.70, 0.0),
            ("1yr All Upfront", 1, 0.65, 1.0),
            ("3yr No Upfront", 3, 0.50, 0.0),
            ("3yr All Upfront", 3, 0.40, 1.0),
        ):
            effective = od * share
            upfront = effective * 8760 * years * upfront_share
            reserved[term] = {
                "upfront_usd": upfront,
                "hourly_usd": 0.0 if upfront_share else effective,
                "effective_hourly_usd": effective,
            }
        prices[itype]["reserved"] = reserved
        prices[itype]["spot"] = {
            "min_usd": od * 0.3,
            "median_usd": od * 0.35,
            "zones": {"use1-az1": od * 0.3, "use1-az2": od * 0.35, "use1-az4": od * 0.4},
            "as_of": "test",
            "source": "moto-5.2.5",
        }
    path = tmp_path / "aws-test.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def inputs(tmp_path, monkeypatch, platform_root):
    monkeypatch.chdir(REPO)
    ledger = Ledger()
    t0 = NOW - dt.timedelta(days=5)
    for kind, alloc, hours in [
        ("finetune", Allocation("H100", gpus=8, cpus=64, nodes=1), 20.0),
        ("serve", Allocation("L40S", gpus=1, cpus=4, nodes=0.25), 100.0),
    ]:
        wid = ledger.start(kind, kind, started_at=t0)
        ledger.finish(wid, "SUCCEEDED", [alloc], ended_at=t0 + dt.timedelta(hours=hours))
    cfg = load_config(
        CostConfig,
        REPO / "jobs/configs/cost/onprem.yaml",
        [f"snapshot={full_book(tmp_path)}"],
    )
    return preflight(cfg, now=NOW, ledger=ledger)


def test_every_option_is_priced_and_reservations_ignore_utilization(inputs):
    result = analyze(inputs)
    opts = result["planned"]["options"]
    assert all(o["available"] for o in opts.values())
    # 3yr All Upfront: the whole term is paid at month 0, nothing after
    cum = opts["3yr All Upfront"]["cumulative_usd"]
    assert cum[0] == pytest.approx(cum[36]) and cum[0] > 0
    full_hourly = opts["on-demand"]["full_hourly_usd"]
    assert cum[0] == pytest.approx(full_hourly * 0.40 * 8760 * 3, rel=1e-9)
    # 1yr All Upfront: paid again at months 13 and 25
    one = opts["1yr All Upfront"]["cumulative_usd"]
    assert one[12] == pytest.approx(one[0]) and one[13] == pytest.approx(2 * one[0])
    assert one[36] == pytest.approx(3 * one[0])
    # spot: busy hours at the median spot price (35% of on-demand here)
    assert opts["spot"]["total_usd"] == pytest.approx(0.35 * opts["on-demand"]["total_usd"])
    # reservations cost the same at any utilization; on-demand scales with it
    cfg = inputs.cfg
    busier = analyze(
        type(inputs)(**{**vars(inputs), "cfg": cfg.model_copy(update={"target_utilization": 0.9})})
    )["planned"]["options"]
    assert busier["3yr No Upfront"]["total_usd"] == pytest.approx(
        opts["3yr No Upfront"]["total_usd"]
    )
    assert busier["on-demand"]["total_usd"] == pytest.approx(opts["on-demand"]["total_usd"] * 1.5)
    # measured view: busy-paid options price the ledger's GPU-hours
    m = result["measured"]
    assert m["cloud_usd"]["on-demand"] == pytest.approx(8 * 20 * 6.88 + 1 * 100 * 2.62316)
    h100 = next(r for r in m["by_type"] if r["accelerator_type"] == "H100")
    assert h100["utilization"] == pytest.approx(160 / (16 * 720))
    # no benchmark for this fleet: latency and plan are honestly absent
    assert result["tokens"] is None and result["capacity"] is None
    assert any("not measured" in n for n in result["notes"])


def test_the_report_renders_every_option(inputs, tmp_path):
    result = analyze(inputs)
    folder = write_report(result, tmp_path / "cost", inputs.sources)
    with (folder / "options.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["AWS option"] for r in rows] == [
        "on-demand",
        "1yr No Upfront",
        "1yr All Upfront",
        "3yr No Upfront",
        "3yr All Upfront",
        "spot",
    ]
    assert all(r["on-prem savings"].endswith("%") for r in rows)
    md = (folder / "report.md").read_text()
    assert "| Latency (measured p50 / p95) | not measured" in md
    assert "capacity_plan.png" not in {p.name for p in folder.iterdir()}
    cumulative = (folder / "cumulative.csv").read_text().splitlines()
    assert cumulative[0].startswith("month,onprem_usd,on-demand_usd,1yr No Upfront_usd")
    assert len(cumulative) == 38
