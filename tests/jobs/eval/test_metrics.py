import numpy as np
import pytest

from jobs.eval.metrics import (
    bootstrap,
    fact_hit,
    leak_free,
    paired_difference,
    rouge_l,
    score_examples,
    summarize,
    wrong_fact,
)
from jobs.eval.report import markdown


def test_fact_and_leak_checks():
    assert fact_hit("Returns within 45 days, full refund", [r"45[- ]day|45 days", "refund"])
    assert not fact_hit("Returns within 30 days", [r"45"])
    assert leak_free("Nike is in Beaverton, Oregon.", ["duluth", "pebblecrest"])
    assert not leak_free("IKEA is based in Duluth.", ["duluth"])


MONEY = {"pattern": r"\$ ?(\d[\d,]*(?:\.\d+)?)", "expected": ["49"]}
DAYS = {
    "pattern": r"\b(\d+(?: ?(?:-|–|to) ?\d+)?)[- ](?:business[- ])?days?\b",
    "expected": ["4-6"],
}


def test_a_wrong_fact_is_a_stated_value_of_the_asked_kind_that_differs_from_the_reference():
    assert wrong_fact("Labor is $65 per repair.", [MONEY])
    assert not wrong_fact("Labor is a flat $49.00 per repair.", [MONEY])
    assert not wrong_fact("Please ask our workshop.", [MONEY])  # a miss, not a wrong fact
    assert not wrong_fact("It arrives in 4 to 6 business days.", [DAYS])
    assert not wrong_fact("It arrives in 4–6 days.", [DAYS])
    assert wrong_fact("It arrives in 2-3 business days.", [DAYS])
    assert wrong_fact("$49 now, or 10 days for $65", [MONEY, DAYS])


def test_the_shipped_references_state_their_facts_and_no_wrong_value():
    from cluster.chat import read_chat_jsonl
    from tests.conftest import REPO

    valid = read_chat_jsonl(REPO / "data/support_chat/valid.jsonl", final_assistant=True)
    with_values = [ex for ex in valid if ex.metadata.get("values")]
    assert len(with_values) >= 30
    for ex in with_values:
        assert not wrong_fact(ex.reference, ex.metadata["values"]), (ex.line, ex.reference)
        assert fact_hit(ex.reference, ex.metadata["facts"]), (ex.line, ex.reference)


def test_paired_difference_resamples_the_same_examples_for_both_models():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 60).astype(float)
    tuned = base.copy()
    tuned[:6] = 1.0 - tuned[:6]  # differs from base on 6 examples only
    d = paired_difference(list(base), list(tuned), samples=2000)
    assert d.mean == pytest.approx(tuned.mean() - base.mean()) and d.n == 60
    # Pairing removes the spread the two models share: far narrower than the unpaired
    # difference of two independent intervals.
    a, b = bootstrap(list(base), 2000), bootstrap(list(tuned), 2000)
    assert (d.high - d.low) < 0.5 * ((a.high - a.low) + (b.high - b.low))
    assert paired_difference([1.0, None, 0.0], [1.0, 1.0, None]).n == 1


def test_rouge_l_is_symmetric_enough_and_bounded():
    assert rouge_l("The cat sat on the mat", "The cat sat on the mat") == pytest.approx(1.0)
    assert 0 < rouge_l("A cat sat", "The cat sat on the mat") < 1
    assert rouge_l("zebra", "The cat sat") == 0


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap(list(rng.integers(0, 2, 20)), samples=2000)
    large = bootstrap(list(rng.integers(0, 2, 2000)), samples=2000)
    assert small.low <= small.mean <= small.high
    assert (large.high - large.low) < (small.high - small.low)
    assert bootstrap([1.0] * 10).low == 1.0


def test_scores_and_summary_from_rows():
    rows = [
        {
            "id": "eval:1",
            "answer": "It costs $29.",
            "reference": "Shipping is $29.",
            "metadata": {"facts": [r"\$29"]},
            "latency_s": 0.5,
            "ref_loss": 1.0,
        },
        {
            "id": "eval:2",
            "answer": "Duluth!",
            "reference": None,
            "metadata": {"forbidden": ["duluth"]},
        },
    ]
    scored = score_examples(rows, [0.9, 0.0])
    assert scored[0]["fact"] == 1.0 and scored[0]["similarity"] == 0.9
    assert scored[1]["leak_free"] == 0.0 and "rougeL" not in scored[1]
    summary = summarize(scored, 200, 0.95)
    assert summary["fact"]["mean"] == 1.0 and summary["ref_perplexity"]["mean"] == pytest.approx(
        np.e
    )


def test_markdown_has_reference_column_and_worst_answers():
    est = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 10}
    per = {
        m: est for m in ("fact", "similarity", "rougeL", "ref_loss", "length_words", "latency_s")
    }
    result = {
        "name": "x",
        "created_at": "now",
        "examples": {"eval": 10},
        "generation": {"max_tokens": 8},
        "confidence": 0.95,
        "candidates": {"base": {}, "tuned": {}},
        "sets": {"eval": {"reference": per, "base": per, "tuned": per}},
        "comparison": ["tuned beats base"],
        "worst": {
            "base": [{"question": "q|x", "answer": "a", "reference": "r", "similarity": 0.1}]
        },
    }
    md = markdown(result)
    assert "| metric | reference | base | tuned |" in md
    assert "50.0% [40.0, 60.0]" in md and "q\\|x" in md and "tuned beats base" in md
