"""Answers for every (candidate, example): generated in-process on Ray actors (one model load
per actor, continuously batched, greedy) or requested from an OpenAI-compatible endpoint, and
appended to a per-candidate cache as they arrive, so an interrupted run resumes where it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
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


# -- in-process generation (a Ray actor per worker) -------------------------------------------
class EvalWorker:
    """Holds one model (+ adapter) and answers batches of items with the shared engine."""

    def __init__(
        self,
        model: str,
        adapter: str | None,
        max_tokens: int,
        batch_size: int,
        seed: int,
        threads: int,
    ):
        import torch

        from cluster.inference.engine import Engine
        from cluster.inference.loading import load_for_inference

        torch.set_num_threads(max(1, threads))
        torch.manual_seed(seed)
        # One adapter, always active: no per-row adapter routing needed.
        self.lm = load_for_inference(model, {"candidate": adapter} if adapter else None)
        self.engine = Engine(
            self.lm.model,
            self.lm.tokenizer,
            eos_ids=self.lm.eos_ids(),
            max_batch_size=batch_size,
            context_len=self.lm.context_len,
            device=self.lm.device,
        )
        self.max_tokens, self.seed = max_tokens, seed

    def answer(self, items: list[Item]) -> list[dict[str, Any]]:
        from cluster.chat import prompt_tokens
        from cluster.inference.engine import Request, SamplingParams

        reqs = []
        for item in items:
            ids, prefix_len = prompt_tokens(self.lm.tokenizer, item.prompt)
            params = SamplingParams(self.max_tokens, seed=self.seed)
            reqs.append(Request(ids, params, prefix_len=prefix_len))
        t0 = time.perf_counter()
        self.engine.generate(reqs)
        wall = time.perf_counter() - t0
        losses = self.reference_losses(items)
        return [
            {
                "id": it.id,
                "answer": r.text.strip(),
                "finish_reason": r.finish_reason,
                "prompt_tokens": len(r.prompt_ids),
                "completion_tokens": len(r.out_ids),
                "latency_s": r.latency_s,
                "batch_wall_s": wall,
                "ref_loss": loss,
            }
            for it, r, loss in zip(items, reqs, losses, strict=True)
        ]

    def reference_losses(self, items: list[Item]) -> list[float | None]:
        """Mean NLL of each reference answer given its prompt (teacher forcing)."""
        import torch

        from cluster.chat import Example
        from jobs.train.data import collate, tokenize_example

        out: list[float | None] = [None] * len(items)
        todo = [(i, it) for i, it in enumerate(items) if it.reference is not None]
        if not todo:
            return out
        tokenized = []
        for _, it in todo:  # only the final turn counts: earlier assistant turns get weight 0
            msgs = [dict(m, weight=0) if m["role"] == "assistant" else dict(m) for m in it.prompt]
            msgs.append({"role": "assistant", "content": it.reference})
            tokenized.append(tokenize_example(self.lm.tokenizer, Example(msgs)))
        with torch.inference_mode():
            batch = collate(tokenized, None, self.lm.tokenizer.pad_token_id or 0)
            batch = {k: v.to(self.lm.device) for k, v in batch.items()}
            logits = self.lm.model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits.float()
            labels = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="none"
            )
            per = (nll.sum(1) / (labels != -100).sum(1).clamp(min=1)).tolist()
        for (i, _), loss in zip(todo, per, strict=True):
            out[i] = float(loss)
        return out

    def ping(self) -> str:
        return self.lm.device


def run_in_process(
    model: str,
    adapter: str | None,
    items: list[Item],
    *,
    workers: int,
    cpus: float,
    gpus: float,
    max_tokens: int,
    batch_size: int,
    seed: int,
    on_batch: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Answer ``items`` on ``workers`` Ray actors; ``on_batch`` gets each finished batch."""
    import ray

    actor_cls = ray.remote(num_cpus=cpus, num_gpus=gpus)(EvalWorker)
    n = max(1, min(workers, len(items)))
    actors = [
        actor_cls.remote(model, adapter, max_tokens, batch_size, seed, max(1, int(cpus)))
        for _ in range(n)
    ]
    try:
        ray.get([a.ping.remote() for a in actors])
        batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        pending = {actors[i % n].answer.remote(b): b for i, b in enumerate(batches)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                on_batch(ray.get(ref))
    finally:
        for a in actors:
            ray.kill(a)


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


def item_dict(item: Item) -> dict[str, Any]:
    return asdict(item)
