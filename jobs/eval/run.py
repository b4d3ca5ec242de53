"""Driver of an evaluation: check everything first, generate what is missing, score, report."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from cluster import paths
from cluster.chat import ChatFormatError, Example, read_chat_jsonl, verbatim_references
from cluster.endpoint_keys import EndpointKeyError, endpoint_key
from cluster.store import ModelStore, StoreError
from jobs.eval.config import Candidate, EvalConfig
from jobs.eval.generate import (
    AnswerCache,
    EndpointError,
    Item,
    Lane,
    check_endpoint,
    folder_digest,
    items_from,
    run_batch,
    run_endpoint,
)
from jobs.eval.metrics import Embedder, bootstrap, score_examples, summarize
from jobs.eval.report import write_report
from jobs.eval.verdict import comparison, differences, judge

log = logging.getLogger(__name__)


class EvalInputError(ValueError):
    """Bad eval input (data file, candidate, endpoint), found before any work."""


def preflight(cfg: EvalConfig, store: ModelStore | None = None) -> dict[str, list[Item]]:
    """Read the sets (and the train set their references must not repeat) and check every
    candidate; one error listing every problem."""
    store = store or ModelStore()
    problems, sets, read = [], {}, {}
    for key, path in (
        ("eval", cfg.eval_set),
        ("retention", cfg.retention_set),
        ("train", cfg.train_set),
    ):
        if not path:
            continue
        try:
            read[key] = read_chat_jsonl(path, final_assistant=(key == "eval"))
        except ChatFormatError as exc:
            problems.append(f"{key}_set: {exc}")
    sets = {k: items_from(k, v) for k, v in read.items() if k != "train"}
    if "eval" in read and "train" in read and not cfg.allow_verbatim_references:
        problems += verbatim_problem(cfg, read["train"], read["eval"])
    for c in cfg.candidates:
        try:
            if c.endpoint:
                # Which key this endpoint may get (the platform's only to the platform), and
                # a named key variable that is missing, stop the run here, before any request.
                key = endpoint_key(c.endpoint, c.api_key_env)
                check_endpoint(c.endpoint, c.model or "", key)
            else:
                store.resolve(c.model or "")
                if c.adapter:
                    store.resolve_adapter(c.adapter)
        except (StoreError, EndpointError, EndpointKeyError) as exc:
            problems.append(f"candidate {c.name!r}: {exc}")
    if problems:
        raise EvalInputError("the evaluation cannot start:\n  - " + "\n  - ".join(problems))
    return sets


def verbatim_problem(cfg: EvalConfig, train: list[Example], heldout: list[Example]) -> list[str]:
    """The eval set's references that repeat a training answer, as one problem (or none)."""
    repeats = verbatim_references(train, heldout)
    if not repeats:
        return []
    lines = ", ".join(str(n) for n, _ in repeats[:5]) + (", ..." if len(repeats) > 5 else "")
    return [
        f"eval_set = {cfg.eval_set!r}: {len(repeats)} of {len(heldout)} references repeat an "
        f"assistant answer of train_set {cfg.train_set!r} word for word (lines {lines}), so "
        "they score recall of the training data, not answers to new questions. Fix: reword "
        "those references (data/support_chat/build.py does for the sample data), or set "
        "allow_verbatim_references: true to score them anyway"
    ]


def fingerprint(c: Candidate, cfg: EvalConfig, store: ModelStore) -> str:
    g = cfg.generation
    if c.endpoint:
        ident = f"endpoint:{c.endpoint}:{c.model}"
    else:
        adapter = store.resolve_adapter(c.adapter) if c.adapter else None
        engine = json.dumps(cfg.engine.engine_kwargs, sort_keys=True)
        ident = (
            f"model:{folder_digest(store.resolve(c.model or ''))}:"
            f"adapter:{folder_digest(adapter)}:engine:{engine}"
        )
    raw = f"{ident}:max_tokens:{g.max_tokens}:seed:{g.seed}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def engine_dtype(cfg: EvalConfig) -> str:
    """The dtype of the batch engine: the config's, else what the platform picks for its
    placement (cluster.llm), else vLLM's own choice ("auto")."""
    from cluster.llm import cpu_engine_defaults

    kwargs = {**cpu_engine_defaults(cfg.engine.placement()), **cfg.engine.engine_kwargs}
    return str(kwargs.get("dtype", "auto"))


def generate_all(
    cfg: EvalConfig, items: list[Item], folder: Path, store: ModelStore
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every candidate's answer to every item: cached answers are kept, endpoints are asked,
    and the batch candidates of each base model share one ``ray.data.llm`` processor."""
    answers: dict[str, dict[str, dict[str, Any]]] = {}
    todo: dict[str, list[Item]] = {}
    caches: dict[str, AnswerCache] = {}
    progress: dict[str, _Progress] = {}
    for c in cfg.candidates:
        cache = AnswerCache(folder / "answers" / f"{c.name}.jsonl", fingerprint(c, cfg, store))
        done = cache.load() if cfg.resume else {}
        if not done:
            cache.reset()
        answers[c.name], caches[c.name] = done, cache
        todo[c.name] = [it for it in items if it.id not in done]
        progress[c.name] = _Progress(c.name, len(todo[c.name]))
        log.info(
            "candidate %s (%s): %d answers cached, %d to generate",
            c.name,
            c.kind,
            len(done),
            len(todo[c.name]),
        )

    def on_batch(name: str, rows: list[dict[str, Any]]) -> None:
        caches[name].append(rows)
        for row in rows:
            answers[name][row["id"]] = row
        progress[name].update(rows)

    for c in cfg.candidates:
        if c.endpoint and todo[c.name]:
            run_endpoint(
                c.endpoint,
                c.model or "",
                endpoint_key(c.endpoint, c.api_key_env),
                todo[c.name],
                concurrency=c.concurrency,
                max_tokens=cfg.generation.max_tokens,
                seed=cfg.generation.seed,
                on_batch=lambda rows, name=c.name: on_batch(name, rows),
            )
    by_base: dict[str, list[Candidate]] = {}
    for c in cfg.candidates:
        if not c.endpoint and todo[c.name]:
            by_base.setdefault(str(store.resolve(c.model or "")), []).append(c)
    engine = cfg.engine.batch_settings()
    for base, cands in by_base.items():
        lanes = [
            Lane(c.name, str(store.resolve_adapter(c.adapter)) if c.adapter else base)
            for c in cands
        ]
        wanted = {it.id for c in cands for it in todo[c.name]}
        run_batch(
            base,
            lanes,
            [it for it in items if it.id in wanted],
            engine=engine,
            max_tokens=cfg.generation.max_tokens,
            on_batch=lambda name, rows: on_batch(
                name, [r for r in rows if r["id"] not in answers[name]]
            ),
        )
    return answers


class _Progress:
    def __init__(self, name: str, total: int):
        self.name, self.total, self.done, self.tokens = name, total, 0, 0
        self.t0 = time.monotonic()

    def update(self, rows: list[dict[str, Any]]) -> None:
        self.done += len(rows)
        self.tokens += sum(r.get("completion_tokens") or 0 for r in rows)
        el = time.monotonic() - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else 0
        log.info(
            "[evaluate] %s: %d/%d answers, %.0f tokens/s, ETA %.0fs",
            self.name,
            self.done,
            self.total,
            self.tokens / max(el, 1e-9),
            eta,
        )


def score(
    cfg: EvalConfig, sets: dict[str, list[Item]], answers: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Metrics per set and candidate (plus the references themselves), and the scored rows
    per set and candidate, in the same order for every candidate (for paired differences)."""
    embedder = Embedder()
    b = (cfg.bootstrap_samples, cfg.confidence)
    out: dict[str, Any] = {}
    scored_by: dict[str, list[dict[str, Any]]] = {}
    rows_by_set: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for set_name, items in sets.items():
        out[set_name] = {}
        refs = [it.reference or "" for it in items]
        for cname, by_id in answers.items():
            rows = [
                {
                    **by_id[it.id],
                    "reference": it.reference,
                    "metadata": it.metadata,
                    "question": it.prompt[-1]["content"],
                }
                for it in items
            ]
            sims = embedder.similarity([r["answer"] for r in rows], refs)
            scored = score_examples(rows, sims)
            scored_by.setdefault(cname, []).extend(scored)
            out[set_name][cname] = summarize(scored, *b)
            out[set_name][cname]["by_kind"] = by_kind(scored, b)
            if set_name == "retention":
                out[set_name][cname].update(retention_summary(scored, b))
            rows_by_set.setdefault(set_name, {})[cname] = scored
        ref_rows = [
            {
                "id": it.id,
                "answer": it.reference or "",
                "reference": it.reference,
                "metadata": it.metadata,
            }
            for it in items
        ]
        ref_scored = score_examples(ref_rows, [1.0] * len(items))
        out[set_name]["reference"] = summarize(ref_scored, *b)
        out[set_name]["reference"]["by_kind"] = by_kind(ref_scored, b)
    return {"sets": out, "scored": scored_by, "rows": rows_by_set}


def retention_summary(scored: list[dict[str, Any]], b: tuple[int, float]) -> dict[str, Any]:
    """General questions answered right and other-company answers without borrowed facts,
    overall and per ``metadata.origin`` (the model-selected batch is biased towards the base
    model; the a-priori batch is not: see data/support_chat/README.md)."""

    def split(rows: list[dict[str, Any]]) -> dict[str, Any]:
        gen = [
            r["fact"]
            for r in rows
            if (r.get("metadata") or {}).get("kind") == "general" and "fact" in r
        ]
        oth = [r["leak_free"] for r in rows if "leak_free" in r]
        return {
            "general_fact": bootstrap(gen, *b).as_dict(),
            "other_leak_free": bootstrap(oth, *b).as_dict(),
        }

    out = split(scored)
    origins = sorted({o for r in scored if (o := (r.get("metadata") or {}).get("origin"))})
    out["by_origin"] = {
        o: split([r for r in scored if (r.get("metadata") or {}).get("origin") == o])
        for o in origins
    }
    return out


def worst_answers(scored: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    rows = [r for r in scored if r.get("similarity") is not None]
    rows.sort(key=lambda r: (r.get("fact", 1.0), r["similarity"]))
    return [
        {
            "id": r["id"],
            "question": r["question"],
            "answer": r["answer"],
            "reference": r["reference"],
            "similarity": r["similarity"],
            "fact": r.get("fact"),
        }
        for r in rows[:n]
    ]


def by_kind(rows: list[dict[str, Any]], b: tuple[int, float]) -> dict[str, Any]:
    """The same metrics for each ``metadata.kind`` (e.g. company facts vs general questions),
    when the set mixes several."""
    kinds = sorted({str((r.get("metadata") or {}).get("kind")) for r in rows})
    if len(kinds) < 2:
        return {}
    return {
        k: summarize([r for r in rows if str((r.get("metadata") or {}).get("kind")) == k], *b)
        for k in kinds
    }


def evaluate(
    cfg: EvalConfig, sets: dict[str, list[Item]], store: ModelStore | None = None
) -> dict[str, Any]:
    store = store or ModelStore()
    folder = paths.reports_dir() / "eval" / cfg.name
    items = [it for s in sets.values() for it in s]
    t0 = time.monotonic()
    answers = generate_all(cfg, items, folder, store)
    scores = score(cfg, sets, answers)
    names = [c.name for c in cfg.candidates]
    base = next((c.name for c in cfg.candidates if not c.adapter and not c.endpoint), None)
    tuned = [c.name for c in cfg.candidates if c.name != base and not c.endpoint]
    b = (cfg.bootstrap_samples, cfg.confidence)
    diffs = {n: differences(scores["rows"], base, n, *b) for n in names if base and n != base}
    judged = cfg.thresholds.judged()
    verdicts = (
        {
            n: judge(judged, {k: v[n] for k, v in scores["sets"].items()}, diffs.get(n, []))
            for n in tuned
        }
        if judged
        else {}
    )
    result = {
        "name": cfg.name,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.model_dump(mode="json"),
        "candidates": {
            c.name: {"kind": c.kind, "model": c.model, "adapter": c.adapter, "endpoint": c.endpoint}
            for c in cfg.candidates
        },
        "examples": {k: len(v) for k, v in sets.items()},
        "generation": cfg.generation.model_dump(),
        # what the batch engine computed in: answers differ between float32 and bf16
        "engine_dtype": engine_dtype(cfg),
        "confidence": cfg.confidence,
        "sets": scores["sets"],
        "base": base,
        "differences": diffs,
        "comparison": comparison(scores["sets"], base, tuned, diffs),
        "verdict": {
            "thresholds": judged,
            "candidates": verdicts,
            "pass": all(v["pass"] for v in verdicts.values()) if verdicts else None,
        },
        "worst": {
            n: worst_answers(
                [r for r in scores["scored"][n] if r["id"].startswith("eval:")], cfg.worst_answers
            )
            for n in names
        },
        "answers": {
            n: [
                {
                    k: r.get(k)
                    for k in (
                        "id",
                        "question",
                        "answer",
                        "reference",
                        "fact",
                        "wrong_fact",
                        "leak_free",
                        "similarity",
                        "rougeL",
                        "ref_loss",
                        "latency_s",
                    )
                }
                | {"kind": (r.get("metadata") or {}).get("kind")}
                for r in scores["scored"][n]
            ]
            for n in names
        },
        "wall_s": round(time.monotonic() - t0, 1),
    }
    write_report(result, folder)
    return result
