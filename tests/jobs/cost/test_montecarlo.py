"""Ranges instead of one number: the Monte Carlo run is reproducible with its seed, equals the
point estimate when every range collapses, and its summaries (savings, who wins, the tornado,
break-even) say what they claim."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from cluster.config import load_config
from cluster.ledger import Ledger
from jobs.cost import analysis, montecarlo
from jobs.cost.config import CostConfig
from jobs.cost.run import preflight
from tests.jobs.cost.samples import REPO

RANGES = {"a": (1.0, 3.0), "b": (5.0, 5.0)}


def test_sampling_is_reproducible_with_its_seed_and_stays_in_range():
    one = montecarlo.sample({"a": 2.0, "b": 5.0}, RANGES, 1000, seed=23)
    two = montecarlo.sample({"a": 2.0, "b": 5.0}, RANGES, 1000, seed=23)
    other = montecarlo.sample({"a": 2.0, "b": 5.0}, RANGES, 1000, seed=24)
    assert np.array_equal(one["a"], two["a"]) and not np.array_equal(one["a"], other["a"])
    assert one["a"].min() >= 1.0 and one["a"].max() <= 3.0
    assert np.median(one["a"]) == pytest.approx(2.0, abs=0.1)  # triangular, mode 2
    assert (one["b"] == 5.0).all()  # a collapsed range stays at its value


def test_savings_and_who_wins_by_hand():
    pv = pd.DataFrame({"own": [100.0, 100.0], "API": [200.0, 80.0], "on-demand": [150.0, 120.0]})
    s = montecarlo.savings(pv)
    assert s["API"].tolist() == pytest.approx([50.0, -25.0])
    # against the cheapest other way in each sample: on-demand (150), then the API (80)
    assert s["cheapest alternative"].tolist() == pytest.approx([100 / 3, -25.0])
    assert montecarlo.decide(pv).tolist() == ["own", "API"]
    summary = montecarlo.summarize(pv)
    assert summary["p_own_wins"] == 0.5 and summary["wins"] == {"own": 0.5, "API": 0.5}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    cfg = load_config(
        CostConfig,
        REPO / "jobs/configs/cost/demo.yaml",
        ["newest_bench=false", "monte_carlo.samples=400"],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        mp.setenv("ONPREM_ROOT", str(root))
        inp = preflight(cfg, ledger=Ledger(f"sqlite:///{root / 'ledger.db'}"))
        built, point = analysis.build(inp, "onprem")
    return inp, built, point


def test_collapsed_ranges_give_the_point_estimate_in_every_sample(model):
    _, built, point = model
    flat = {k: (v, v) for k, v in point.items()}
    x = montecarlo.sample(point, flat, 50, seed=7)
    pv = montecarlo.present_values(built, x)
    at_point = montecarlo.present_values(built, {k: np.array([v]) for k, v in point.items()})
    assert np.allclose(pv.to_numpy(), at_point.to_numpy())  # every sample is the point
    q = montecarlo.summarize(pv)["savings"]
    point_savings = montecarlo.savings(at_point).iloc[0]
    assert q["p50"].to_numpy() == pytest.approx(point_savings[q.index].to_numpy())
    assert (q["p10"] == q["p90"]).all()


def test_the_same_seed_gives_the_same_run(model):
    inp, built, point = model
    ranges = {k: tuple(v) for k, v in inp.cfg.ranges.items()}
    runs = [montecarlo.present_values(built, montecarlo.sample(point, ranges, 200, 23))
            for _ in range(2)]  # fmt: skip
    runs = [montecarlo.summarize(pv) for pv in runs]
    pd.testing.assert_frame_equal(runs[0]["savings"], runs[1]["savings"])
    assert runs[0]["p_own_wins"] == runs[1]["p_own_wins"]


def test_the_tornado_moves_one_input_to_each_end_and_marks_flips(model):
    inp, built, point = model
    ranges = {k: tuple(v) for k, v in inp.cfg.ranges.items()}
    t = montecarlo.tornado(built, point, ranges).set_index("input")
    at_point = montecarlo.present_values(built, {k: np.array([v]) for k, v in point.items()})
    base = montecarlo.savings(at_point)["cheapest alternative"][0]
    assert t["base"].iloc[0] == pytest.approx(base)
    staff = t.loc["staff_usd_per_node_year"]  # costs more at the high end: owning saves less
    assert staff.savings_pct_high < base < staff.savings_pct_low
    assert staff.value_low == ranges["staff_usd_per_node_year"][0]
    decided = montecarlo.decide(at_point)[0]
    ends = t[["decision_low", "decision_high"]]
    assert (ends.ne(decided).any(axis=1) == t.flips).all()  # flips: an end changes the verdict
    assert t.swing.is_monotonic_decreasing  # the biggest movers first


def test_break_even_volume_is_where_owning_meets_the_api(model):
    _, built, point = model
    be = montecarlo.break_even(built, point, "API")
    assert be is not None and not be["below_grid"] and 0 < be["utilization"] < 1

    def gap(volume):
        x = {k: np.array([v]) for k, v in point.items()} | {"tokens_per_day": np.array([volume])}
        pv = montecarlo.present_values(built, x)
        return float(pv["own"][0] - pv["API"][0])

    assert gap(be["tokens_per_day"] * 0.97) > 0 >= gap(be["tokens_per_day"])  # API cheaper below


def test_the_model_is_vectorised_over_samples(model):
    _, built, point = model
    x = {k: np.array([v, v]) for k, v in point.items()}
    x["staff_usd_per_node_year"] = np.array([point["staff_usd_per_node_year"], 0.0])
    pv = montecarlo.present_values(built, x)
    assert pv["own"][1] < pv["own"][0] and pv["API"][1] == pytest.approx(pv["API"][0])
    shapes_off = dataclasses.replace(built, picks=[None] * len(built.picks), options=[])
    assert set(montecarlo.present_values(shapes_off, x).columns) == {"own", "API"}
