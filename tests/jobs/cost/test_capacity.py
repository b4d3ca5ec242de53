"""Reading a benchmark, p95 from p90/p99, the operating point under an SLO, and the plan."""

import json

import pytest

from jobs.cost import capacity as cap
from jobs.cost.bench import BenchError, load_bench, newest_bench, operating_point, p95
from tests.jobs.cost.samples import bench_json


def test_p95_is_measured_or_interpolated_between_p90_and_p99():
    assert p95({"p50": 1, "p90": 2, "p95": 3.5, "p99": 11}) == (3.5, False)
    assert p95({"p50": 1, "p90": 2, "p99": 11}) == (pytest.approx(7.0), True)  # 2 + 9 * 5/9
    with pytest.raises(KeyError):
        p95({"p50": 1})


def test_operating_point_is_the_highest_concurrency_within_the_slo(tmp_path):
    path = tmp_path / "b" / "bench.json"
    path.parent.mkdir()
    path.write_text(json.dumps(bench_json()))
    bench = load_bench(path)
    assert [lv.concurrency for lv in bench.levels] == [1, 4, 16]
    # p95 of c=16: 11.0 + 2.5 * 5/9 = 12.39 s; c=4: 6.0 + 1.1 * 5/9 = 6.61 s
    assert bench.levels[2].e2e_p95_s == pytest.approx(12.3889, abs=1e-4)
    assert operating_point(bench.levels, 10.0).concurrency == 4
    assert operating_point(bench.levels, 13.0).concurrency == 16
    assert operating_point(bench.levels, 1.0) is None
    assert operating_point(bench.levels, None).concurrency == 16  # the highest throughput
    assert newest_bench(tmp_path) == path


def test_a_bad_bench_file_names_what_is_wrong(tmp_path):
    with pytest.raises(BenchError, match="no such file"):
        load_bench(tmp_path / "none.json")
    bad = tmp_path / "bench.json"
    bad.write_text(json.dumps({"levels": []}))
    with pytest.raises(BenchError, match=r"has no levels\[\]"):
        load_bench(bad)
    data = bench_json()
    del data["levels"][1]["output_token_throughput"]
    bad.write_text(json.dumps(data))
    with pytest.raises(BenchError, match=r"levels\[1\] lacks output_token_throughput"):
        load_bench(bad)


def test_base_load_and_hosts():
    assert cap.base_load(2.0, None, 256) == (2.0, 512.0)
    rps, tps = cap.base_load(None, 86400 * 100.0, 50)
    assert (rps, tps) == (pytest.approx(2.0), pytest.approx(100.0))
    assert cap.replicas_needed(100.0, 50.0, 0.8) == 3  # 100 / 40 = 2.5
    assert cap.replicas_needed(80.0, 50.0, 0.8) == 2
    assert cap.hosts_needed(9, 1, 8) == 2  # 8 one-GPU replicas per 8-GPU node
    assert cap.hosts_needed(3, 2, 2) == 3
    assert cap.hosts_needed(2, 8, 1) == 16  # an 8-GPU replica on 1-GPU instances
    assert cap.hosts_needed(0, 1, 8) == 0


def test_plan_month_by_month():
    shape = cap.Shape(
        accelerator_type="H100",
        units_per_replica=1,
        tokens_per_s=50.0,
        units_per_node=8,
        node_capex_usd=300000.0,
        node_opex_monthly_usd=5000.0,
        instance_type="p5.48xlarge",
        units_per_instance=8,
        instance_hourly_usd=55.04,
    )
    months = cap.plan(shape, 1.0, 100.0, growth_pct_per_month=10, months=24, headroom=0.8)
    first, last = months.iloc[0], months.iloc[-1]
    # month 0: 100 tok/s -> 3 replicas; month 2: 121 -> 4; one 8-GPU node holds them all
    assert list(months.replicas[:3]) == [3, 3, 4]
    assert first.nodes == 1 and first.new_nodes == 1
    assert first.onprem_monthly_usd == pytest.approx(305000.0)
    assert first.cloud_monthly_usd == pytest.approx(55.04 * 730)
    assert months.onprem_monthly_usd[1] == pytest.approx(5000.0)
    # demand 100 * 1.1^23 = 895 tok/s -> 23 replicas -> 3 nodes, never fewer than before
    assert last.replicas == 23 and last.nodes == 3
    assert months.nodes.is_monotonic_increasing and months.new_nodes.sum() == 3
    cross = cap.crossover_month(months)
    assert cross is not None
    after, before = months[months.month >= cross], months.iloc[cross - 1]
    assert (after.onprem_cumulative_usd <= after.cloud_cumulative_usd).all()
    assert before.onprem_cumulative_usd > before.cloud_cumulative_usd
