"""A trial's score on the selection split: its adapter and the base model answer the split
greedily (vLLM through ``ray.data.llm``, the evaluation job's code), judged on the verdict's
four checks. The score is the smallest margin to a threshold, each as a share (facts 0.83
against facts_min 0.80 is +0.03; a leak-free drop of 0.08 against 0.05 is -0.03): a trial
passes every check on the split exactly when its score is >= 0, and a higher score is further
from failing any of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cluster import paths
from jobs.eval.config import Candidate, EvalConfig, Generation
from jobs.eval.verdict import CHECKS
from jobs.sweep.config import Selection

BASE = "base"
# The selection split holds the verdict's two sets in one file: held-out-like questions
# (company, general) and retention-like ones (other companies, and general ones too).
EVAL_KINDS = ("company", "general")
RETENTION_KINDS = ("general", "other_company")


def split_sets(selection: Selection, folder: Path) -> tuple[Path, Path]:
    """The selection split as an eval set and a retention set, by ``metadata.kind``."""
    import json

    rows, kinds, seen = [], [], {}
    for line in Path(selection.eval_set).read_text().splitlines():
        if not line.strip():
            continue
        kind = json.loads(line).get("metadata", {}).get("kind")
        seen[kind] = seen.get(kind, 0) + 1
        if selection.per_kind is None or seen[kind] <= selection.per_kind:
            rows.append(line)
            kinds.append(kind)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, wanted in (("eval", EVAL_KINDS), ("retention", RETENTION_KINDS)):
        path = folder / f"select-{name}.jsonl"
        path.write_text("".join(r + "\n" for r, k in zip(rows, kinds, strict=True) if k in wanted))
        out.append(path)
    return out[0], out[1]


def eval_config(
    selection: Selection, name: str, model: str, adapter: str | None, sets: tuple[Path, Path]
) -> EvalConfig:
    candidates = [Candidate(name=BASE, model=model)]
    if adapter:
        candidates.append(Candidate(name="trial", model=model, adapter=adapter))
    return EvalConfig(
        name=name,
        eval_set=str(sets[0]),
        retention_set=str(sets[1]),
        candidates=candidates,
        generation=Generation(max_tokens=selection.max_tokens),
        engine=selection.engine,
        bootstrap_samples=200,
        thresholds=selection.thresholds,
        worst_answers=0,
    )


def score_base(selection: Selection, sweep: str, model: str) -> Path:
    """The base model's answers to the split, generated once per sweep; every trial copies
    them (the evaluation's answer cache) instead of generating them again."""
    from jobs.eval.run import evaluate, preflight

    folder = paths.reports_dir() / "tune" / sweep
    sets = split_sets(selection, folder)
    cfg = eval_config(selection, f"tune-{sweep}-base", model, None, sets)
    evaluate(cfg, preflight(cfg))
    return paths.reports_dir() / "eval" / cfg.name / "answers" / f"{BASE}.jsonl"


def score_trial(
    selection: Selection, sweep: str, trial: str, model: str, adapter: Path
) -> dict[str, Any]:
    """The trial's checks on the split and its score (module docstring)."""
    from jobs.eval.run import evaluate, preflight

    folder = paths.reports_dir() / "tune" / sweep
    sets = (folder / "select-eval.jsonl", folder / "select-retention.jsonl")
    cfg = eval_config(selection, f"tune-{sweep}-{trial}", model, str(adapter), sets)
    base_answers = paths.reports_dir() / "eval" / f"tune-{sweep}-base" / "answers" / "base.jsonl"
    cache = paths.reports_dir() / "eval" / cfg.name / "answers" / f"{BASE}.jsonl"
    if base_answers.is_file() and not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(base_answers, cache)
    result = evaluate(cfg, preflight(cfg))
    return margins(result["verdict"]["candidates"]["trial"])


def margins(verdict: dict[str, Any]) -> dict[str, Any]:
    """Each check's measured value and margin, the score (the smallest margin) and whether
    every check passed, from a verdict of jobs.eval.verdict.judge."""
    out: dict[str, Any] = {}
    worst = None
    for check in verdict["checks"]:
        key, limit = check["threshold"], check["limit"]
        measured = (check.get("measured") or {}).get("mean")
        at_most = CHECKS[key][1]
        margin = None if measured is None else (limit - measured if at_most else measured - limit)
        out[key.removesuffix("_min").removesuffix("_max")] = measured
        out[f"margin_{key}"] = margin
        if margin is None:
            worst = -1.0
        elif worst is None or margin < worst:
            worst = margin
    out["score"] = -1.0 if worst is None else worst
    out["pass"] = bool(verdict["pass"])
    return out
