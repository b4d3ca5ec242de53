"""The whole analysis on the example fleet (onprem.yaml, the shipped snapshot, a ledger with a
fine-tuning campaign): every way priced and the cheapest decides; commitments and blocks cost
every hour while on-demand follows the load; the fleet is sized from demand, growth reaches the
TCO and the inventory is checked; the 8B replica rents the one-GPU instance."""

import dataclasses
import datetime as dt

import numpy as np
import pytest

from cluster.config import load_config
from cluster.ledger import Allocation, Ledger
from jobs.cost import analysis, billing
from jobs.cost.config import CostConfig
from jobs.cost.model import evaluate
from jobs.cost.prices import OPTIONS
from jobs.cost.run import preflight
from tests.jobs.cost.samples import REPO

NOW = dt.datetime(2026, 11, 27, 12, 0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
    t0 = NOW - dt.timedelta(days=5)
    for kind, alloc, hours in [
        ("finetune", Allocation("H100", gpus=8, cpus=64, nodes=1), 20.0),
        ("serve", Allocation("L40S", gpus=1, cpus=4, nodes=0.25), 100.0),
    ]:
        wid = ledger.start(kind, kind, started_at=t0)
        ledger.finish(wid, "SUCCEEDED", [alloc], ended_at=t0 + dt.timedelta(hours=hours))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        mp.setenv("ONPREM_ROOT", str(root))
        cfg = load_config(
            CostConfig, REPO / "jobs/configs/cost/onprem.yaml", ["monte_carlo.samples=300"]
        )
        yield preflight(cfg, now=NOW, ledger=ledger)


@pytest.fixture(scope="module")
def result(inputs):
    return analysis.analyze(inputs)


def test_training_campaigns_come_from_the_ledger(inputs):
    # 8 GPUs x 20 h fine-tuning in a 30-day period, a month being 365/12 days
    assert inputs.training_gpu_hours == pytest.approx(160 / 30 * 365 / 12)
    assert "finetune H100-hours" in inputs.training_source


def test_every_serving_way_is_priced_and_the_cheapest_decides(result):
    h = result["headline"]
    ways = h["ways"]
    assert set(ways.index) == {"own", "API"} | (set(OPTIONS) - {"spot"})  # spot carries no serving
    assert h["decision"] == ways["pv_usd"].astype(float).idxmin()
    assert h["best_rent"] == ways.drop(index=["own", "API"])["pv_usd"].astype(float).idxmin()
    assert (ways.drop(index=["own", "API"])["instance"] == "p5.48xlarge").all()
    en, es = result["verdict"]["en"], result["verdict"]["es"]
    assert en.startswith("For the team's volume: ") and es.startswith(
        "Para el volumen del equipo: "
    )
    assert f"{result['montecarlo']['p_own_wins']:.0%}" in en and "futuros simulados" in es
    # the API billed for the workload's prompt shape: 15 + 1024 / 256 x 3.75 = $30 per 1M
    assert h["per_1m"]["fine-tuned gpt-4o"] == pytest.approx(30.0)


def test_commitments_and_blocks_cost_every_hour_on_demand_the_hours_used(inputs):
    # the same busiest hour with half the day's mean: the same instances held, half the load
    model, point = analysis.build(inputs, "onprem")
    x = {k: np.array([v, v]) for k, v in point.items()} | {"egress_bytes_per_token": np.zeros(2)}
    x["tokens_per_day"] = np.array([point["tokens_per_day"], point["tokens_per_day"] / 2])
    x["peak_to_mean"] = np.array([point["peak_to_mean"], point["peak_to_mean"] * 2])
    pv = {k: billing.npv(f, x["discount_rate_pct"]) for k, f in evaluate(model, x).items()}
    for held in ("RI 3yr No Upfront", "Compute SP 1yr All Upfront", "Capacity Block"):
        assert pv[held][1] == pytest.approx(pv[held][0]), held
    assert pv["on-demand"][1] < 0.75 * pv["on-demand"][0]
    assert pv["API"][1] == pytest.approx(pv["API"][0] / 2)


def test_the_fleet_is_sized_from_demand_and_growth_reaches_the_tco(inputs, result):
    plan = result["headline"]["plan"]
    # 265M tokens a day at 1.67x: 5,122 tok/s at the busiest hour; a TP8 H100 replica makes
    # 8 x 125 = 1,000 tok/s, 800 at 80% headroom: 7 replicas + 1 spare = 8 p5.48xlarge
    assert plan["peak_tokens_per_s"].iloc[0] == pytest.approx(265e6 / 86400 * 1.67)
    assert plan["replicas_H100"].iloc[0] == 8 and plan["p5.48xlarge_instances"].iloc[0] == 8
    assert plan["nodes_added"].is_monotonic_increasing and plan["nodes_added"].iloc[-1] > 0
    assert result["notes"][0].startswith("WARNING: the inventory of fleet onprem cannot carry")
    model, point = analysis.build(inputs, "onprem")
    flat, grown = point | {"growth_pct_per_month": 0.0}, point | {"growth_pct_per_month": 4.0}
    pv = {
        g: {k: billing.npv(f, np.array([point["discount_rate_pct"]]))[0]
            for k, f in evaluate(model, x).items()}
        for g, x in (("flat", flat), ("grown", grown))
    }  # fmt: skip
    for way in ("own", "on-demand", "API"):
        assert pv["grown"][way] > pv["flat"][way], way


def test_a_demand_the_inventory_carries_is_not_warned_about(inputs):
    small = inputs.cfg.model_copy(
        update={
            "workload": inputs.cfg.workload.model_copy(update={"tokens_per_day": 20e6}),
            "ranges": inputs.cfg.ranges | {"tokens_per_day": (10e6, 40e6)},
            "monte_carlo": inputs.cfg.monte_carlo.model_copy(update={"samples": 50}),
        }
    )
    result = analysis.analyze(dataclasses.replace(inputs, cfg=small))
    assert not any(n.startswith("WARNING") for n in result["notes"])
    assert (result["headline"]["plan"]["nodes_added"] == 0).all()


def test_the_8b_replica_rents_the_one_gpu_instance(result):
    small = next(v for v in result["scenarios"] if v["fleet"] == "l40s")
    (shape,) = small["shapes"]
    # g6e.xlarge $1.861 per L40S-hour against g6e.12xlarge's $10.49264 / 4 = $2.62 (29% more)
    assert shape["instance"] == "g6e.xlarge" and shape["replicas_per_instance"] == 1
    assert pytest.approx(0.29, abs=0.005) == 1 - 1.861 / (10.49264 / 4)
    assert shape["rate"]["label"] == "configured"  # 275 vs the derivation's 272.9


def test_throughput_is_labelled_and_corrected_where_the_derivation_disagrees(result):
    labels = {s["rate"]["gpu"]: s["rate"]["label"] for s in result["headline"]["shapes"]}
    assert labels == {"H100": "configured", "L40S": "corrected"}
    assert any("L40S x4: corrected: configured 38 is +22% off" in n for n in result["notes"])


def test_every_estimated_price_used_is_listed(result):
    assert "p5.48xlarge RI 3yr No Upfront" in result["prices"]["estimates"]
    assert "p5.48xlarge Capacity Block" in result["prices"]["estimates"]
    assert "p5.48xlarge on-demand" not in result["prices"]["estimates"]
