"""The README's Results block is generated from what the demo wrote: the cost rows come from the
cost report's summary.json (the decision in English and Spanish, its range, the cheapest way to
rent and the API, cost per 1M tokens)."""

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
    res = json.loads(next((reports / "cost").glob("*/summary.json")).read_text())["results"]
    assert c["decision_en"] == res["decision_en"] and c["cheapest_option"] == res["cheapest_option"]
    table = demo.results_markdown(summary, "2026-11-29")
    # the decision first, in English and Spanish, then its figures, all from summary.json
    modelled = table.split("**Modelled decision**")[1]
    assert modelled.index(f"**{res['decision_en']}**") < modelled.index("|")
    assert f"> **En español:** {res['decision_es']}" in modelled
    assert (
        f"| Rent: {res['cheapest_option']} on {res['cheapest_instance']} | API: fine-tuned gpt-4o |"
        in modelled
    )
    assert (
        f"| **Cost over 36 months** | ${res['own_pv_usd']:,.0f} (${res['setup_usd']:,.0f} up "
        f"front) | ${res['cheapest_pv_usd']:,.0f} | ${res['api_pv_usd']:,.0f} |"
    ) in modelled
    per_1m = res["usd_per_1m_output_tokens"]
    assert (
        f"| **Cost per 1M output tokens** | ${per_1m['owned']:.2f} | ${per_1m['cheapest AWS']:.2f} "
        "| $30.00 |"
    ) in modelled
    p50, p10, p90 = (res[f"savings_pct_p{q}"] for q in (50, 10, 90))
    assert f"owning saves {p50:+.0f}% ({p10:+.0f}% to {p90:+.0f}%) against the" in modelled
    assert "Throughput: H100: configured, L40S: corrected." in modelled
    assert "prices are estimates from published discounts" in modelled

    # What was measured here and what is modelled are separate tables; one latency definition.
    measured, modelled = table.split("**Modelled decision**")
    assert "| latency, 1 user | 1.10 s p50 / 1.40 s p95 at 1 user, 48 output tokens |" in measured
    assert "| latency, 16 users | 4.20 s p50 / 6.05 s p95 at 16 concurrent users, 48" in measured
    assert "9.5 vs 35.2 (3.7x, continuous batching)" in measured
    assert "612 s, 2 workers, 80 tokens/s (an earlier run, reused by this demo)" in measured
    assert "13 min 0 s (reused: finetune)" in measured
    assert "The GPU path (vLLM on CUDA, DeepSpeed with bf16 and NCCL) did not run here" in measured
    assert "Cost over 36 months" in modelled and "Cost over" not in measured
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


def test_the_demo_refuses_a_cluster_too_small_to_show_autoscaling():
    import yaml

    config = yaml.safe_load((REPO / demo.SERVE).read_text())  # peak 3 logical CPUs
    problem = demo.cpus_problem(2, config)
    assert "offers 2 logical CPUs" in problem and "hold 3 with every model" in problem
    assert "ONPREM_NUM_CPUS=4 python -m cluster up" in problem
    assert demo.cpus_problem(3, config) is None and demo.cpus_problem(None, config) is None


def test_the_local_cluster_offers_at_least_the_demos_logical_cpus(monkeypatch):
    from cluster import local

    monkeypatch.delenv("ONPREM_NUM_CPUS", raising=False)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    assert local.LocalCluster.from_env().num_cpus == 4 == local.MIN_LOGICAL_CPUS
    monkeypatch.setattr(local.os, "cpu_count", lambda: 32)
    assert local.LocalCluster.from_env().num_cpus == 32
    monkeypatch.setenv("ONPREM_NUM_CPUS", "3")  # an explicit count wins
    assert local.LocalCluster.from_env().num_cpus == 3
