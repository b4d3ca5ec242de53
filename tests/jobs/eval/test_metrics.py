import numpy as np
import pytest

from jobs.eval.metrics import (
    Estimate,
    bootstrap,
    fact_hit,
    leak_free,
    overlap,
    rouge_l,
    score_examples,
    summarize,
)
from jobs.eval.report import markdown


def test_fact_and_leak_checks():
    assert fact_hit("Returns within 45 days, full refund", [r"45[- ]day|45 days", "refund"])
    assert not fact_hit("Returns within 30 days", [r"45"])
    assert leak_free("Nike is in Beaverton, Oregon.", ["duluth", "pebblecrest"])
    assert not leak_free("IKEA is based in Duluth.", ["duluth"])


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


def test_overlap():
    assert overlap(Estimate(0.5, 0.4, 0.6, 10), Estimate(0.55, 0.5, 0.7, 10))
    assert not overlap(Estimate(0.1, 0.0, 0.2, 10), Estimate(0.9, 0.8, 1.0, 10))


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
        "verdict": ["tuned beats base"],
        "worst": {
            "base": [{"question": "q|x", "answer": "a", "reference": "r", "similarity": 0.1}]
        },
    }
    md = markdown(result)
    assert "| metric | reference | base | tuned |" in md
    assert "50.0% [40.0, 60.0]" in md and "q\\|x" in md and "tuned beats base" in md
