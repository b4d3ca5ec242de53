"""Preference pairs from the supervised model's own mistakes on training prompts.

Training prompts of two kinds are drawn (never the held-out or retention sets): questions about
the company, whose answers must carry a fact (``metadata.facts``), and other companies'
questions, answered in training without the company's facts. The supervised model answers them
greedily (vLLM through ``ray.data.llm``, the evaluation job's batch code); an answer that misses
the fact, or borrows one of the company's facts for another company (the company's name or the
facts of the same topic), becomes the rejected side of a pair whose chosen side is the training
answer. Answers that are right make no pair: DPO moves only what the model gets wrong.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from cluster.atomic import write_text
from cluster.chat import Example, read_chat_jsonl
from jobs.eval.metrics import fact_hit, leak_free
from jobs.prefs.config import Pairs

log = logging.getLogger("jobs.preference")
COMPANY, OTHER = "company", "other_company"


def draw(pairs: Pairs) -> list[tuple[str, Example, list[str]]]:
    """The prompts to answer: (kind, example, patterns), ``per_kind`` of each kind at most.
    For a company question the patterns are its facts (all must appear); for another
    company's question, what it must not borrow."""
    rows = read_chat_jsonl(pairs.train)
    company = [ex for ex in rows if ex.metadata.get("kind") in pairs.company_kinds]
    company = [ex for ex in company if ex.metadata.get("facts")]
    other = [ex for ex in rows if ex.metadata.get("kind") in pairs.other_kinds]
    name = [re.escape(pairs.company)] if pairs.company else []
    by_topic: dict[str, set[str]] = {}
    for ex in company:
        by_topic.setdefault(ex.metadata.get("topic", ""), set()).update(ex.metadata["facts"])
    rng = np.random.default_rng(pairs.seed)
    out = []
    for kind, pool in ((COMPANY, company), (OTHER, other)):
        for i in sorted(rng.permutation(len(pool))[: pairs.per_kind]):
            ex = pool[i]
            if kind == COMPANY:
                out.append((kind, ex, list(ex.metadata["facts"])))
            else:
                topic = ex.metadata.get("topic", "")
                borrowed = sorted(by_topic.get(topic) or by_topic.get(topic.split("_")[-1], set()))
                out.append((kind, ex, [*name, *borrowed]))
    return out


def is_wrong(kind: str, answer: str, patterns: list[str]) -> bool:
    if kind == COMPANY:
        return not fact_hit(answer, patterns)
    return not leak_free(answer, patterns)


def answer(model_dir: str, drawn: list[tuple[str, Example, list[str]]], pairs: Pairs) -> list[str]:
    """The supervised model's greedy answers, in order."""
    from jobs.eval.generate import Item, Lane, run_batch

    # No reference: with one, run_batch also scores it (a second pass per prompt for its
    # log-probabilities), which the pairs never read; make_pairs takes it from the example.
    items = [Item(f"{kind}:{ex.line}", kind, ex.prompt, None, ex.metadata) for kind, ex, _ in drawn]
    got: dict[str, str] = {}

    def keep(_lane: str, rows: list[dict[str, Any]]) -> None:
        got.update({r["id"]: r["answer"] for r in rows})
        if len(got) % 32 == 0 or len(got) == len(items):
            log.info("answered %d/%d training prompts", len(got), len(items))

    run_batch(
        model_dir,
        [Lane("sft", model_dir)],
        items,
        engine=pairs.engine.batch_settings(),
        max_tokens=pairs.max_tokens,
        on_batch=keep,
    )
    return [got[it.id] for it in items]


def make_pairs(
    drawn: list[tuple[str, Example, list[str]]], answers: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pairs (TRL's conversational preference format) and how many of each kind the
    supervised model got wrong."""
    out, counts = [], {COMPANY: [0, 0], OTHER: [0, 0]}
    for (kind, ex, patterns), said in zip(drawn, answers, strict=True):
        counts[kind][1] += 1
        if not is_wrong(kind, said, patterns):
            continue
        counts[kind][0] += 1
        out.append(
            {
                "prompt": [{"role": m["role"], "content": m["content"]} for m in ex.prompt],
                "chosen": [{"role": "assistant", "content": ex.reference}],
                "rejected": [{"role": "assistant", "content": said}],
                "kind": kind,
                "line": ex.line,
            }
        )
    stats = {f"{k}_wrong": f"{w}/{n}" for k, (w, n) in counts.items()}
    return out, stats


def write_pairs(path: Path, pairs: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(p) + "\n" for p in pairs))
