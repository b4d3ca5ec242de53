"""Throughput per GPU (measured, configured when the derivation agrees, derived otherwise) and
the replicas a growing load needs, with N+1, against hand-computed examples."""

import json

import numpy as np
import pytest

from jobs.cost import demand
from jobs.cost.bench import load_bench
from tests.jobs.cost.samples import bench_json


def test_the_derivation_scales_the_reference_by_bandwidth_and_weight_bytes():
    # 495 tok/s (8B on an A100-40GB, 8 users) x bandwidth / 1.56 TB/s x 8 / parameters
    assert demand.derived_tokens_per_s("H100", 70) == pytest.approx(495 * 3.35 / 1.56 * 8 / 70)
    assert demand.derived_tokens_per_s("L40S", 8) == pytest.approx(495 * 0.86 / 1.56)  # 272.9
    assert demand.derived_tokens_per_s("RTX4090", 8) is None


def test_a_configured_rate_is_kept_within_10_percent_and_corrected_beyond():
    h100 = demand.rate("H100", 8, 70, configured=125.0)  # derivation 121.5: +3%
    assert (h100.label, h100.tokens_per_s, h100.replica_tokens_per_s) == (
        "configured",
        125.0,
        1000.0,
    )
    # the case: 70B at tensor parallel 4 on L40S, 38 configured, 31.2 by the derivation
    l40s = demand.rate("L40S", 4, 70, configured=38.0)
    assert l40s.label == "corrected"
    assert l40s.tokens_per_s == pytest.approx(495 * 0.86 / 1.56 * 8 / 70)  # 31.18
    assert "configured 38 is +22% off the derivation" in l40s.how
    derived = demand.rate("L40S", 1, 8, configured=None)
    assert derived.label == "derived" and derived.tokens_per_s == pytest.approx(272.88, abs=0.01)


def test_a_benchmark_of_the_fleet_is_measured_at_the_latency_target(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench_json()))
    # the fake benchmark: concurrency 4 (48 tok/s, p95 6.61 s) is the highest within 8 s
    r = demand.rate("H100", 8, 70, 125.0, bench=load_bench(path), latency_s=8.0)
    assert r.label == "measured" and r.tokens_per_s == pytest.approx(48 / 8)
    assert "concurrency 4" in r.how
    # no level meets 1 s: the configured or derived rate is used instead
    assert (
        demand.rate("H100", 8, 70, 125.0, bench=load_bench(path), latency_s=1.0).label != "measured"
    )


def test_replicas_for_the_busiest_hour_with_headroom_and_a_spare():
    # 86.4M tokens a day = 1,000 tok/s, growing 10% a month: 1,000, 1,100, 1,210
    mean = demand.load(np.array([86.4e6]), np.array([10.0]), 3)
    assert mean[0] == pytest.approx([1000.0, 1100.0, 1210.0])
    # busiest hour 1.5x: 1,500 / (500 x 0.8) = 3.75 -> 4 replicas, + 1 spare = 5;
    # 1,650 / 400 = 4.1 -> 5 + 1; 1,815 / 400 = 4.5 -> 5 + 1
    reps = demand.replicas(mean, np.array([1.5]), np.array([500.0]), 0.8, 1)
    assert list(reps[0]) == [5, 6, 6]
    # exactly at capacity is not one more replica: 1,600 / 400 = 4
    exact = demand.replicas(np.array([[1600.0]]), np.array([1.0]), np.array([500.0]), 0.8, 0)
    assert exact[0, 0] == 4
