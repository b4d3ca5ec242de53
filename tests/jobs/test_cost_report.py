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
    *(f"{c}.png" for c in ("decision", "tornado", "cumulative", "plan", "workloads")),
    *(
        f"{c}.csv"
        for c in (
            "answer",
            "ways",
            "montecarlo",
            "tornado",
            "plan",
            "cumulative",
            "scenarios",
            "node_costs",
            "usage_by_type",
            "usage_by_kind",
            "inputs",
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
    # The example `onprem` fleet serving 265M output tokens a day (demo.yaml): at the busiest
    # hour 265e6 / 86400 x 1.67 = 5,122 tok/s; N+1 at 80% headroom needs 5,122 / 0.8 + 1,000 =
    # 7,403 tok/s; the inventory serves 2 x 1,000 (H100, TP8) + 124.7 (L40S, TP4 at the corrected
    # 31.2 tok/s per GPU): 6 more H100 servers from month 0. Paid at the start:
    #   (635,000 + 6 x 289,000) x 1.13 (network/storage 10%, spares 3%) + 10,000 setup
    assert r["setup_usd"] == pytest.approx((635000 + 6 * 289000) * 1.13 + 10000)
    assert r["decision"] in ("own", "API") or r["cheapest_instance"] == "p5.48xlarge"
    assert r["decision_en"].startswith("For the team's volume: ")
    assert r["decision_es"].startswith("Para el volumen del equipo: ")
    assert r["savings_pct_p10"] <= r["savings_pct_p50"] <= r["savings_pct_p90"]
    assert 0 <= r["p_own_wins"] <= 1 and r["estimates"]
    assert r["throughput"] == ["H100: configured", "L40S: corrected"]
    assert r["usd_per_1m_output_tokens"]["fine-tuned gpt-4o"] == pytest.approx(30.0)
    assert r["break_even_tokens_per_day_vs_api"] < r["tokens_per_day"]
    # the laptop: 2 h x 2 + 10 h x 2 + 0.5 h x 1 = 24.5 CPU-hours of 2 CPUs x 720 h: idle
    assert r["measured_utilization"] == pytest.approx(24.5 / 1440) and r["measured_idle"]
    assert r["prices"].startswith("snapshot prices as of 2026-08")

    md = (folder / "report.md").read_text()
    assert md.startswith("# Cost report: API, rent or own")
    answer = md.split("## The answer")[1].split("\n## ")[0]
    assert f"**{r['decision_en']}**" in answer and f"**En español:** {r['decision_es']}" in answer
    assert "| own the fleet |" in answer and "| API: fine-tuned gpt-4o |" in answer
    assert "Throughput used: 8 x H100: **configured**" in answer and "**estimates**" in answer
    for section in (
        "Every way, billed the way it is billed",
        "What flips the verdict",
        "The fleet sized from demand",
        "Fleets side by side",
        "AWS prices and where they come from",
        "Measured on this machine",
        "On-prem cost per node",
        "Inputs, ranges and sources",
        "Method",
    ):
        assert f"## {section}" in md
    measured = md.split("## Measured on this machine")[1].split("##")[0]
    assert "Fleet `laptop` was nearly idle over 720 h: busy 1.7% of its CPU-hours" in measured
    assert "Latency, measured: 5.30 s p50 / 6.61 s p95 at " in measured
    assert "ESTIMATE: on-demand 55.04 x (1 - 60.0%)" in md and "[epoch]" in md
    with capsys.disabled():
        print(answer.strip()[:1500])

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
    assert summary["results"]["setup_usd"] == pytest.approx((635000 + 6 * 289000) * 1.13 + 10000)
    assert (folder / "report.html").stat().st_size > 50_000
    ledger = Ledger(f"sqlite:///{ray_cluster.root / '.cluster' / 'ledger.db'}")
    assert any(w["submission_id"] == job.submission_id for w in ledger.workloads(kind="cost"))
