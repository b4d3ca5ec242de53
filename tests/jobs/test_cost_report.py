"""``jobs.cost_report`` end to end in the demo profile, without Ray: a temporary ledger with a
few rows, a fake bench.json and the shipped price snapshot -> the whole report, in < 30 s."""

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest

from cluster.ledger import Allocation, Ledger, utcnow
from jobs import cost_report
from tests.jobs.cost.samples import bench_json

REPO = Path(__file__).resolve().parents[2]
FILES = {
    "report.md",
    "report.html",
    "summary.json",
    *(
        f"{c}.png"
        for c in (
            "cumulative",
            "savings_vs_utilization",
            "options",
            "per_token",
            "sensitivity",
            "workloads",
            "capacity_plan",
        )
    ),
    *(
        f"{c}.csv"
        for c in (
            "results",
            "options",
            "prices",
            "cumulative",
            "savings_vs_utilization",
            "scenarios",
            "per_token",
            "sensitivity",
            "node_costs",
            "usage_by_type",
            "usage_by_kind",
            "inputs",
            "capacity_plan",
        )
    ),
}


def seed(root: Path) -> None:
    """What a demo leaves behind: laptop CPU usage in the ledger and a serving benchmark."""
    ledger = Ledger()
    t0 = utcnow() - dt.timedelta(days=3)
    for kind, hours, cpus in [("finetune", 2.0, 2), ("serve", 10.0, 2), ("bench", 0.5, 1)]:
        wid = ledger.start(kind, f"{kind}-demo", started_at=t0)
        ledger.finish(
            wid,
            "SUCCEEDED",
            [Allocation("CPU", cpus=cpus, nodes=cpus / 2)],
            ended_at=t0 + dt.timedelta(hours=hours),
        )
    bench = root / "reports" / "bench" / "20261120-100000" / "bench.json"
    bench.parent.mkdir(parents=True)
    bench.write_text(json.dumps(bench_json()))


def test_demo_profile_writes_the_whole_report(platform_root, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    seed(platform_root)
    start = time.perf_counter()
    rc = cost_report.main(["--config", "jobs/configs/cost/demo.yaml"])
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\ndemo cost report written in {elapsed:.1f} s")
    assert rc == 0
    assert elapsed < 30
    (folder,) = (platform_root / "reports" / "cost").iterdir()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.name)
    assert {p.name for p in folder.iterdir()} == FILES

    r = json.loads((folder / "summary.json").read_text())["results"]
    # The example `onprem` fleet at 60% for 36 months (cluster/inventory.yaml):
    #   up front 635,000 servers + 63,500 network/storage (10%) + 19,050 spares (3%) + 10,000
    #   running 15,257.4 power + 50,894.4 colocation + 50,800 support + 40,000 staff a year
    #   capital 727,550 x 7% = 50,928.5 a year -> owned 727,550 + 3 x 207,880.3 = 1,351,191
    assert r["setup_usd"] == pytest.approx(727550.0)
    assert r["running_per_year_usd"] == pytest.approx(156951.8, abs=0.1)
    assert r["owned_total_usd"] == pytest.approx(1351190.9, abs=0.5)
    # cheapest able to carry it: H100 Capacity Blocks ($39.33 / 8 GPUs, busy hours), the rest
    # on-demand: 16 x 4.91625 x 26,280 h x 0.6 + 165,448 (L40S) + 25,430.6 (CPU) = 1,431,189
    assert r["cheapest_option"] == "Capacity Block (on-demand for CPU, L40S)"
    assert r["cheapest_total_usd"] == pytest.approx(1431189.5, abs=1.0)
    assert r["savings_pct_vs_cheapest"] == pytest.approx(5.59, abs=0.01)
    assert r["break_even_month_vs_cheapest"] == pytest.approx(32.43, abs=0.01)
    assert r["savings_pct_vs_on_demand"] == pytest.approx(29.87, abs=0.01)
    assert r["break_even_month_vs_on_demand"] == pytest.approx(20.10, abs=0.01)
    # per 1M output tokens: (16 x 125 + 4 x 38) tok/s x 3600 x 730 x 0.6 a month, and the
    # API's 15 + 200/64 x 3.75 = 26.71875 with the prompts
    per_1m = r["usd_per_1m_output_tokens"]
    assert per_1m["owned"] == pytest.approx(1351190.9 / (2152 * 3600 * 730 * 0.6 * 36) * 1e6, 1e-4)
    assert per_1m["fine-tuned gpt-4o"] == pytest.approx(26.71875)
    # the fake benchmark (the laptop): concurrency 4 is the highest within the 10 s SLO;
    # its p95 is interpolated: 6.0 + (7.1 - 6.0) * 5/9
    assert r["measured_latency_p50_s"] == pytest.approx(5.3)
    assert r["measured_latency_p95_s"] == pytest.approx(6.6111, abs=1e-4)
    # the laptop: 2 h x 2 + 10 h x 2 + 0.5 h x 1 = 24.5 CPU-hours of 2 CPUs x 720 h: idle
    assert r["measured_utilization"] == pytest.approx(24.5 / 1440)
    assert r["measured_idle"] and r["measured_savings_pct"] is None
    assert r["prices"].startswith("snapshot prices as of 2026-08")

    md = (folder / "report.md").read_text()
    assert md.startswith("# Cost report: on-prem vs AWS and the cloud API")
    results = md.split("## Results")[1].split("##")[0]
    for row in (
        "AWS, cheapest able to carry it: Capacity Block (on-demand for CPU, L40S) | AWS on-demand"
        " | Cloud API: fine-tuned gpt-4o (list prices) |",
        "| Paid up front | $727,550 ($635,000 servers, $63,500 network and storage",
        "| Owning saves | - | 5.6% | 29.9% |",
        "| USD per 1M output tokens | $11.06 | $11.72 | $15.77 | $26.72",
        "| Latency | not measured on this fleet",
    ):
        assert row in results, row
    assert "5.30 s" not in results  # the laptop's latency stays out of the GPU fleet's table
    for section in (
        "Cumulative cost over 36 months",
        "Savings vs utilization",
        "AWS prices and where they come from",
        "Cost per 1M tokens: fleets side by side",
        "What moves the answer",
        "Measured on this machine",
        "Capacity plan",
        "On-prem cost per node",
        "Inputs and their sources",
        "Method",
    ):
        assert f"## {section}" in md
    measured = md.split("## Measured on this machine")[1].split("##")[0]
    assert "Fleet `laptop` was nearly idle over 720 h: busy 1.7% of its CPU-hours" in measured
    assert "per busy CPU-hour" in measured and "%" not in measured.split("per busy")[1][:120]
    assert "Latency, measured: 5.30 s p50 / 6.61 s p95 at " in measured
    assert "is the streamed end-to-end latency (request sent to last token received)" in measured
    assert "- EC2 Capacity Blocks for ML: no price for CPU (m7i.xlarge), L40S (g6e.12xlarge)" in md
    assert "pricing=live`" in md and "[epoch]" in md and "aws-capacity-blocks-page" in md
    with capsys.disabled():
        print(results.strip())

    cost_runs = Ledger().workloads(kind="cost")
    assert [w["status"] for w in cost_runs] == ["SUCCEEDED"]

    # a run that fails while writing leaves the good report as it was, and no temp folders
    before = (folder / "report.md").read_bytes()

    def broken(result, tmp):
        (tmp / "cumulative.png").write_bytes(b"half a chart")
        raise RuntimeError("disk full")

    monkeypatch.setattr("jobs.cost.report.draw_all", broken)
    assert cost_report.main(["--config", "jobs/configs/cost/demo.yaml"]) == 1
    assert (folder / "report.md").read_bytes() == before
    assert [p.name for p in (platform_root / "reports" / "cost").iterdir()] == [folder.name]
    assert [w["status"] for w in Ledger().workloads(kind="cost")] == ["SUCCEEDED", "FAILED"]


def test_live_pricing_without_credentials_falls_back_and_says_so(
    platform_root, monkeypatch, tmp_path
):
    monkeypatch.chdir(REPO)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    args = ["--config", "jobs/configs/cost/demo.yaml", "--pricing", "live", "name=live"]
    assert cost_report.main([*args, "newest_bench=false"]) == 0
    folder = platform_root / "reports" / "cost" / "live"
    prices = json.loads((folder / "summary.json").read_text())["prices"]
    assert prices["source"] == "snapshot"
    assert prices["fallback"].startswith("fell back to the snapshot: live pull failed (NoCred")
    md = (folder / "report.md").read_text()
    assert "fell back to the snapshot: live pull failed (NoCredentialsError" in md
    assert "Latency, measured: not measured" in md


def test_bad_input_exits_2_before_any_work(platform_root, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_:
        cost_report.main(
            ["--config", "jobs/configs/cost/demo.yaml", "fleet=nowhere", "bench=/no/bench.json"]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "fleet = 'nowhere': is not a fleet of cluster/inventory.yaml" in err
    assert "Fix: use one of: l40s, laptop, onprem" in err
    assert "bench = '/no/bench.json': no such file" in err
    assert not (platform_root / "reports").exists()
    assert not (platform_root / ".cluster").exists()  # the ledger was not even opened


def test_a_malformed_explicit_bench_exits_2(platform_root, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    bad = platform_root / "bench.json"
    bad.write_text(json.dumps({"levels": [{"concurrency": 1}]}))
    rc = cost_report.main(["--config", "jobs/configs/cost/demo.yaml", f"bench={bad}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"bench = '{bad}'" in err and "levels[0] lacks" in err
    assert not (platform_root / "reports" / "cost").exists()


@pytest.mark.integration
def test_cost_report_through_ray_job_submit(ray_cluster):
    """The same job through the real ``ray job submit`` (working dir = a copy of the repo)."""
    from cluster.submit import submit

    job = submit(
        ray_cluster,
        ["python", "-m", "jobs.cost_report", "--config", "jobs/configs/cost/demo.yaml", "name=ray"],
        kind="cost",
        working_dir=REPO,
        timeout_s=600,
    )
    assert job.ok, job.output
    folder = ray_cluster.root / "reports" / "cost" / "ray"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["results"]["setup_usd"] == pytest.approx(727550.0)
    assert (folder / "report.html").stat().st_size > 50_000
    ledger = Ledger(f"sqlite:///{ray_cluster.root / '.cluster' / 'ledger.db'}")
    assert any(w["submission_id"] == job.submission_id for w in ledger.workloads(kind="cost"))
