"""Reading a benchmark, p95 from p90/p99, and the operating point under a latency target."""

import json

import pytest

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
