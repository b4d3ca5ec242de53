"""The README's Results block is generated from what the demo wrote: the cost rows come from the
cost report's summary.json (cheapest AWS option, on-demand, cost per 1M tokens)."""

import json

from cluster import demo
from jobs import cost_report
from tests.jobs.test_cost_report import REPO, seed


def test_results_rows_compare_with_the_cheapest_option_on_demand_and_the_api(
    platform_root, monkeypatch
):
    monkeypatch.chdir(REPO)
    seed(platform_root)
    assert cost_report.main(["--config", "jobs/configs/cost/demo.yaml"]) == 0
    reports = platform_root / "reports"
    scores = {"fact": {"mean": 0.5}, "similarity": {"mean": 0.7}}
    (reports / "eval" / "support").mkdir(parents=True)
    checks = [
        {"threshold": "facts_min", "limit": 0.8, "measured": {"mean": 0.5}, "pass": False},
        {"threshold": "wrong_facts_max", "limit": 0.1, "measured": {"mean": 0.05}, "pass": True},
    ]
    verdict = {"candidates": {"fine-tuned": {"checks": checks, "pass": False}}, "pass": False}
    (reports / "eval" / "support" / "eval.json").write_text(
        json.dumps({"sets": {"eval": {"base": scores, "fine-tuned": scores}}, "verdict": verdict})
    )
    (reports / "bench" / "demo").mkdir(parents=True)
    levels = [
        {"concurrency": 1, "e2e_s": {"p50": 1.1, "p95": 1.4}, "output_token_throughput": 9.5},
        {"concurrency": 16, "e2e_s": {"p50": 4.2, "p95": 6.05}, "output_token_throughput": 35.2},
    ]
    (reports / "bench" / "demo" / "bench.json").write_text(
        json.dumps({"levels": levels, "throughput_ratio": 3.7, "max_tokens": 48})
    )
    run_dir = platform_root / "runs" / "support"
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(
        json.dumps({"device": "cpu", "world_size": 2, "wall_s": 612.4, "tokens_per_s": 80.2})
    )
    summary = demo.summary("support", 780, reused=["finetune"], run_dir=run_dir)
    c = summary["cost"]
    assert c["cheapest_option"] == "Capacity Block (on-demand for CPU, L40S)"
    assert round(c["savings_pct"], 2) == 5.59 and round(c["savings_pct_on_demand"], 2) == 29.87
    table = demo.results_markdown(summary, "2026-11-29")
    assert "| **Setup cost** | $727,550 (servers, network and storage, spares, site setup)" in table
    assert "| **Running cost** | $207,880/year (power, colocation, support, staff, cost of" in table
    assert "$642,207/year (AWS on-demand rent for the same busy hours)" in table
    assert (
        "**6%** vs the cheapest AWS option able to carry the workload (Capacity Block (on-demand "
        "for CPU, L40S); break-even month 32); 30% vs on-demand (break-even month 20), over 36 "
        "months"
    ) in table
    assert (
        "| **Cost per 1M output tokens** | $11.06 owned (planned throughput) | $11.72 cheapest "
        "AWS option, $15.77 AWS on-demand, $26.72 fine-tuned gpt-4o (list price) |"
    ) in table

    # What was measured here and what is modelled are separate tables; one latency definition.
    measured, modelled = table.split("**Modelled fleet**")
    assert "| latency, 1 user | 1.10 s p50 / 1.40 s p95 at 1 user, 48 output tokens |" in measured
    assert "| latency, 16 users | 4.20 s p50 / 6.05 s p95 at 16 concurrent users, 48" in measured
    assert "9.5 vs 35.2 (3.7x, continuous batching)" in measured
    assert "612 s, 2 workers, 80 tokens/s (an earlier run, reused by this demo)" in measured
    assert "13 min 0 s (reused: finetune)" in measured
    assert "The GPU path (vLLM on CUDA, DeepSpeed with bf16 and NCCL) did not run here" in measured
    assert "Setup cost" in modelled and "Setup cost" not in measured
    assert "cloud answers" not in table and "reference answers" in table
    assert (
        "Verdict for fine-tuned against the thresholds in "
        "`jobs/configs/evaluate/smollm2_support.yaml`: **FAIL** (facts_min 0.8: 0.50 FAIL, "
        "wrong_facts_max 0.1: 0.05 PASS)."
    ) in measured


def test_the_demo_rewrites_the_readme_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold 76%\n<!-- results:end -->\noutro\n")
    summary = {
        "seconds": 61,
        "eval": {"base": {"company_fact": 0.0}, "fine-tuned": {"company_fact": 0.8}},
        "bench": {},
        "cost": {},
    }
    demo.update_readme(summary, readme)
    text = readme.read_text()
    assert "old 76%" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| company facts answered right (held-out) | 0% | 80% |" in text
    assert "1 min 1 s" in text
