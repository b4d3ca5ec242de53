"""Paired differences, the threshold verdict and how eval.md ends (pure, no models)."""

import pytest

from jobs.eval.config import Thresholds
from jobs.eval.report import markdown
from jobs.eval.run import retention_summary
from jobs.eval.verdict import comparison, differences, judge


def rows(kind_values, origin=None):
    """Scored rows: (kind, metric, value) -> one row each."""
    return [
        {"id": f"r{i}", "metadata": {"kind": k, **({"origin": origin} if origin else {})}, m: v}
        for i, (k, m, v) in enumerate(kind_values)
    ]


def test_differences_are_candidate_minus_base_overall_per_kind_and_per_origin():
    ev_base = rows([("company", "fact", 0.0)] * 4 + [("general", "fact", 1.0)] * 4)
    ev_tuned = rows([("company", "fact", 1.0)] * 4 + [("general", "fact", 0.5)] * 4)
    ret_base = rows([("general", "fact", 1.0)] * 3, "a-priori") + rows(
        [("general", "fact", 1.0)] * 3, "model-selected"
    )
    ret_tuned = rows([("general", "fact", 1.0)] * 3, "a-priori") + rows(
        [("general", "fact", 0.0)] * 3, "model-selected"
    )
    diffs = differences(
        {"eval": {"b": ev_base, "t": ev_tuned}, "retention": {"b": ret_base, "t": ret_tuned}},
        "b",
        "t",
        200,
        0.95,
    )
    got = {(d["set"], d["subset"], d["metric"]): d["mean"] for d in diffs}
    assert got[("eval", "all", "fact")] == pytest.approx(0.25)
    assert got[("eval", "company", "fact")] == 1.0 and got[("eval", "general", "fact")] == -0.5
    assert got[("retention", "all", "fact")] == -0.5
    assert got[("retention", "a-priori", "fact")] == 0.0
    assert got[("retention", "model-selected", "fact")] == -1.0

    # The plain-language comparison states fact accuracy as these paired differences, per kind
    # with company questions first (never as two intervals that overlap or not).
    sets = {"eval": {"b": {"fact": est(0.5)}, "t": {"fact": est(0.75)}}}
    lines = comparison(sets, "b", ["t"], {"t": diffs})
    facts = [x for x in lines if "fact accuracy" in x]
    assert facts[0].startswith("t fact accuracy (company questions) minus b's: +100 points")
    assert facts[1].startswith("t fact accuracy (general questions) minus b's: -50 points")
    assert not any("overlap" in x for x in lines)


def est(mean, n=40):
    return {"mean": mean, "low": mean - 0.1, "high": mean + 0.1, "n": n}


def test_judge_passes_only_when_every_threshold_holds():
    thresholds = Thresholds(
        facts_min=0.8, wrong_facts_max=0.1, retention_drop_max=0.05, leak_free_drop_max=0.05
    ).judged()
    summary = {"eval": {"by_kind": {"company": {"fact": est(0.85), "wrong_fact": est(0.05)}}}}
    diffs = [
        {"set": "retention", "subset": "all", "metric": "fact", **est(-0.02)},
        {"set": "retention", "subset": "all", "metric": "leak_free", **est(-0.10)},
    ]
    v = judge(thresholds, summary, diffs)
    by = {c["threshold"]: c for c in v["checks"]}
    assert by["retention_drop_max"]["measured"]["mean"] == pytest.approx(0.02)
    # the drop's interval is the difference's, negated and swapped
    assert by["leak_free_drop_max"]["measured"]["low"] == pytest.approx(0.0)
    assert [c["pass"] for c in v["checks"]] == [True, True, True, False] and not v["pass"]
    # unmeasurable (no metadata.values in the eval set): not shown to hold, so FAIL
    v = judge({"wrong_facts_max": 0.1, "retention_drop_max": 0.05}, {"eval": {}}, [])
    assert [c.get("not_measured") for c in v["checks"]] == [
        "no metadata.values in the eval set",
        "no retention_set",
    ]
    assert not any(c["pass"] for c in v["checks"]) and not v["pass"]


def test_retention_is_split_by_origin():
    scored = rows([("general", "fact", 1.0)] * 2, "a-priori") + rows(
        [("general", "fact", 0.0)] * 2 + [("other_company", "leak_free", 1.0)], "model-selected"
    )
    out = retention_summary(scored, (200, 0.95))
    assert out["general_fact"]["mean"] == 0.5
    assert out["by_origin"]["a-priori"]["general_fact"]["mean"] == 1.0
    assert out["by_origin"]["model-selected"]["general_fact"]["mean"] == 0.0
    assert out["by_origin"]["model-selected"]["other_leak_free"]["mean"] == 1.0


def test_eval_md_ends_with_the_verdict_table():
    per = {m: est(0.5) for m in ("fact", "wrong_fact", "similarity", "rougeL")}
    check = {
        "threshold": "facts_min",
        "measures": "held-out fact accuracy (company questions)",
        "limit": 0.8,
        "measured": est(0.5),
        "pass": False,
    }
    result = {
        "name": "x",
        "created_at": "now",
        "examples": {"eval": 40},
        "generation": {"max_tokens": 8},
        "confidence": 0.95,
        "candidates": {"base": {}, "fine-tuned": {}},
        "sets": {"eval": {"reference": per, "base": per, "fine-tuned": per}},
        "base": "base",
        "differences": {
            "fine-tuned": [{"set": "eval", "subset": "all", "metric": "fact", **est(0.25)}]
        },
        "comparison": [],
        "verdict": {
            "thresholds": {"facts_min": 0.8},
            "candidates": {"fine-tuned": {"checks": [check], "pass": False}},
            "pass": False,
        },
        "worst": {},
    }
    md = markdown(result)
    assert "## Differences with base (paired)" in md
    assert "| eval | fact accuracy | +25.0 pt [+15.0, +35.0] |" in md
    tail = md[md.index("## Verdict") :]
    assert "| `facts_min` | held-out fact accuracy (company questions) | 80.0% |" in tail
    assert "50.0% [40.0, 60.0] | FAIL |" in tail
    assert tail.rstrip().endswith("| **overall** | | | | **FAIL** |")
    assert "cloud" not in md.lower()
