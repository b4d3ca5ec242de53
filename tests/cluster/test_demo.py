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
    (reports / "eval" / "support" / "eval.json").write_text(
        json.dumps({"sets": {"eval": {"base": scores, "fine-tuned": scores}}})
    )
    (reports / "bench" / "demo").mkdir(parents=True)
    (reports / "bench" / "demo" / "bench.json").write_text(
        json.dumps({"levels": [{"e2e_s": {"p50": 1.1}}], "throughput_ratio": 3.7})
    )
    summary = demo.summary("support", 780)
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
