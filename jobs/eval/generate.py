"""Answers for every (candidate, example): generated in batch by vLLM through ``ray.data.llm``
(greedy; one processor per base model, base and adapter candidates in the same engine) or
requested from an OpenAI-compatible endpoint, and appended to a per-candidate cache as they
arrive, so an interrupted run resumes where it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.chat import Example

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One example to answer; ``id`` is ``<set>:<line>``."""

    id: str
    set: str
    prompt: list[dict[str, Any]]
    reference: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def items_from(set_name: str, examples: Sequence[Example]) -> list[Item]:
    return [
        Item(f"{set_name}:{ex.line}", set_name, ex.prompt, ex.reference, ex.metadata)
        for ex in examples
    ]


class AnswerCache:
    """``answers/<candidate>.jsonl``: a header line with the candidate's fingerprint, then one
    answer per line. A different fingerprint (other model, adapter or settings) starts over."""

    def __init__(self, path: Path, fingerprint: str):
        self.path, self.fingerprint = path, fingerprint

    def load(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        lines = self.path.read_text().splitlines()
        if not lines or json.loads(lines[0]).get("fingerprint") != self.fingerprint:
            return {}
        rows = {}
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill: redo that example
                continue
            rows[row["id"]] = row
        return rows

    def reset(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"fingerprint": self.fingerprint}) + "\n")

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        with self.path.open("a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def folder_digest(folder: Path | None) -> str:
    """Cheap identity of a model or adapter folder (manifest, or file names/sizes/mtimes)."""
    if folder is None:
        return "-"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    parts = [
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in sorted(folder.iterdir())
        if p.is_file()
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# -- batch generation (ray.data.llm: vLLM engines fed by Ray Data) ----------------------------
@dataclass(frozen=True)
class Lane:
    """One candidate generated in a batch processor: ``model`` is the engine's model folder
    (the base) for the base model, or the adapter folder for a LoRA candidate."""

    name: str
    model: str


def _preprocess(row: dict[str, Any]) -> dict[str, Any]:
    """An eval row for vLLM: the chat prompt to answer greedily, or (``score``) the prompt
    followed by the reference, whose prompt log-probabilities give the reference loss."""
    messages = [dict(m) for m in row["messages"]]
    # Every row of a run carries the same keys with the same types: Ray Data stores rows as
    # Arrow tables, where a key missing from some rows turns the others' integers into floats,
    # which vLLM refuses (and a refusal inside its engine core stalls the pipeline).
    params: dict[str, Any] = {"temperature": 0.0, "max_tokens": int(row["max_tokens"])}
    if row["scoring"]:
        params["prompt_logprobs"] = 0
    if row["score"]:
        messages.append({"role": "assistant", "content": row["reference"]})
        params["max_tokens"] = 1
    return {
        "key": row["key"],
        "model": row["model"],
        "messages": messages,
        "sampling_params": params,
    }


def _postprocess(row: dict[str, Any]) -> dict[str, Any]:
    logprobs = row.get("prompt_logprobs") if row["key"].split("|")[1] == "True" else None
    chosen: list[float | None] = []
    if logprobs is not None:
        ids = list(row["prompt_token_ids"])
        for tok, entry in zip(ids, logprobs, strict=True):
            info = (entry or {}).get(tok) or (entry or {}).get(str(tok))
            chosen.append(None if info is None else float(info["logprob"]))
    return {
        "key": row["key"],
        "text": row["generated_text"],
        "prompt_tokens": int(row["num_input_tokens"]),
        "completion_tokens": int(row["num_generated_tokens"]),
        "prompt_ids": list(row["prompt_token_ids"]),
        "prompt_logprobs": chosen,
    }


def reference_loss(prompt_ids: Sequence[int], scored: dict[str, Any]) -> float | None:
    """Mean negative log-likelihood of the reference tokens: the scored sequence is the
    generation prompt followed by the reference, so its tokens after ``prompt_ids`` are the
    reference's. None when the two do not share that prefix (a template that is not
    prefix-stable)."""
    ids, logprobs = scored["prompt_ids"], scored["prompt_logprobs"]
    n = len(prompt_ids)
    if len(ids) <= n or list(ids[:n]) != list(prompt_ids):
        return None
    tail = [lp for lp in logprobs[n:] if lp is not None]
    return -sum(tail) / len(tail) if tail else None


def run_batch(
    base: str,
    lanes: Sequence[Lane],
    items: Sequence[Item],
    *,
    engine: dict[str, Any],
    max_tokens: int,
    on_batch: Callable[[str, list[dict[str, Any]]], None],
) -> None:
    """Answer ``items`` for every lane with one ``ray.data.llm`` processor on the ``base``
    model folder: base-model rows and adapter rows share its vLLM engines (mixed batches).
    ``engine`` holds ``engine_kwargs``, ``placement_group_config``, ``replicas`` and
    ``batch_size``. ``on_batch(lane, rows)`` gets answers as they stream out, so an interrupted
    run keeps what it finished."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from cluster.llm import (
        adapter_rank,
        cpu_engine_defaults,
        engine_env,
        lora_engine_kwargs,
        on_cpu,
    )

    kwargs = {**cpu_engine_defaults(engine["placement_group_config"]), **engine["engine_kwargs"]}
    adapters = [lane.model for lane in lanes if lane.model != base]
    # Reference losses come from vLLM's prompt log-probabilities, which vLLM 0.29 cannot
    # return from an engine with LoRA enabled (its LoRA logits layer fails on the prompt's
    # shape, and the engine dies), so an engine serving adapters reports none.
    scoring = not adapters
    if adapters:
        log.warning(
            "no reference loss for %s: vLLM 0.29 returns no prompt log-probabilities with "
            "LoRA adapters; evaluate a merged model (fine-tune merge=true) to get one",
            ", ".join(lane.name for lane in lanes),
        )
        cpu = on_cpu(engine["placement_group_config"])
        ranks = [adapter_rank(a) for a in adapters]
        for key, value in lora_engine_kwargs(ranks, len(adapters), cpu=cpu).items():
            kwargs.setdefault(key, value)
    # The light stages (chat template, pre/postprocess) take a tenth of a CPU each: with Ray
    # Data's default of one CPU per stage they and the engine's bundle ask for more CPUs than a
    # small machine has, and the pipeline never starts. Tokenizing and detokenizing are left to
    # the engine, as vLLM's own server does (same tokenizer defaults: special tokens added to the
    # prompt, skipped in the answer): two fewer actor processes, each importing the tokenizer
    # stack, which on a 2-core machine is most of an evaluation's start-up.
    light = {"num_cpus": 0.1, "concurrency": 1}
    config = vLLMEngineProcessorConfig(
        model_source=base,
        engine_kwargs=kwargs,
        runtime_env={"env_vars": engine_env(engine["placement_group_config"])},
        placement_group_config=engine["placement_group_config"],
        batch_size=engine["batch_size"],
        concurrency=engine["replicas"],
        chat_template_stage=light,
        tokenize_stage=False,
        detokenize_stage=False,
    )
    processor = build_processor(
        config,
        preprocess=_preprocess,
        postprocess=_postprocess,
        preprocess_map_kwargs={"num_cpus": 0.1},
        postprocess_map_kwargs={"num_cpus": 0.1},
    )
    by_key = {it.id: it for it in items}
    rows = [
        {
            "key": f"{lane.name}|{score}|{it.id}",
            "model": lane.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in it.prompt],
            "reference": it.reference or "",
            "max_tokens": max_tokens,
            "score": score,
            "scoring": scoring,
        }
        for it in items
        for lane in lanes
        for score in ((False, True) if scoring and it.reference is not None else (False,))
    ]
    pending: dict[str, dict[str, Any]] = {}  # an answer waiting for its reference loss
    t0 = time.perf_counter()
    for batch in processor(ray.data.from_items(rows)).iter_rows():
        lane, score, item_id = batch["key"].split("|", 2)
        key = f"{lane}|{item_id}"
        part = pending.setdefault(key, {})
        part["score" if score == "True" else "answer"] = batch
        needed = 2 if scoring and by_key[item_id].reference is not None else 1
        if len(part) < needed:
            continue
        pending.pop(key)
        answer = part["answer"]
        loss = reference_loss(answer["prompt_ids"], part["score"]) if "score" in part else None
        on_batch(
            lane,
            [
                {
                    "id": item_id,
                    "answer": answer["text"].strip(),
                    "finish_reason": (
                        "length" if answer["completion_tokens"] >= max_tokens else "stop"
                    ),
                    "prompt_tokens": answer["prompt_tokens"],
                    "completion_tokens": answer["completion_tokens"],
                    "latency_s": None,  # a batch has throughput, not per-request latency
                    "batch_wall_s": time.perf_counter() - t0,
                    "ref_loss": loss,
                }
            ],
        )


# -- endpoint generation ---------------------------------------------------------------------
class EndpointError(RuntimeError):
    pass


def check_endpoint(base_url: str, model: str, api_key: str | None) -> None:
    """Fail before any work if the endpoint is down or does not serve ``model``."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"endpoint {base_url} is not reachable ({type(exc).__name__}). Fix: start the app "
            "(serve run serve/config.yaml, or make demo) or correct the URL"
        ) from None
    if resp.status_code == 401:
        raise EndpointError(
            f"endpoint {base_url} refused the API key (401). Fix: export the "
            "key in the candidate's api_key_env variable"
        )
    if resp.status_code != 200:
        raise EndpointError(f"endpoint {base_url}/models answered {resp.status_code}")
    ids = [m.get("id") for m in resp.json().get("data", [])]
    if model not in ids:
        raise EndpointError(
            f"endpoint {base_url} does not serve model {model!r}. Fix: use one "
            f"of {', '.join(map(str, ids))}"
        )


def run_endpoint(
    base_url: str,
    model: str,
    api_key: str | None,
    items: list[Item],
    *,
    concurrency: int,
    max_tokens: int,
    seed: int,
    on_batch: Callable[[list[dict[str, Any]]], None],
) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=2, timeout=600)

    def one(item: Item) -> dict[str, Any]:
        t0 = time.perf_counter()
        resp = client.chat.completions.create(
            model=model,
            messages=[{"role": m["role"], "content": m["content"]} for m in item.prompt],
            max_tokens=max_tokens,
            temperature=0,
            seed=seed,
        )
        choice = resp.choices[0]
        return {
            "id": item.id,
            "answer": (choice.message.content or "").strip(),
            "finish_reason": choice.finish_reason,
            "prompt_tokens": resp.usage.prompt_tokens if resp.usage else None,
            "completion_tokens": resp.usage.completion_tokens if resp.usage else None,
            "latency_s": time.perf_counter() - t0,
            "ref_loss": None,
        }

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for row in pool.map(one, items):
            on_batch([row])
