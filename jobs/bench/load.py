"""The load generator: streamed chat requests at a fixed concurrency, timed per token."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RequestResult:
    ok: bool
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)  # gaps between streamed chunks
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    start: float = 0.0


def load_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    """Conversations to send: the prompts of a chat JSONL, or one user message per line."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".jsonl":
        from cluster.chat import read_chat_jsonl

        return [
            [{"role": m["role"], "content": m["content"]} for m in ex.prompt]
            for ex in read_chat_jsonl(path, need_assistant=False)
        ]
    return [[{"role": "user", "content": line}] for line in text.splitlines() if line.strip()]


async def one_request(
    client: Any,
    url: str,
    headers: dict[str, str],
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
) -> RequestResult:
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    res = RequestResult(ok=False, start=time.time())
    last = None
    try:
        async with client.stream("POST", url, json=body, headers=headers) as resp:
            if resp.status_code != 200:
                res.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
                return res
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    res.error = str(event["error"])[:200]
                    return res
                if event.get("usage"):
                    res.prompt_tokens = event["usage"]["prompt_tokens"]
                    res.output_tokens = event["usage"]["completion_tokens"]
                for choice in event.get("choices", []):
                    if choice.get("delta", {}).get("content"):
                        now = time.perf_counter()
                        if res.ttft_s is None:
                            res.ttft_s = now - t0
                        elif last is not None:
                            res.itl_s.append(now - last)
                        last = now
    except Exception as exc:  # a failed request is a result, not a crash of the benchmark
        res.error = f"{type(exc).__name__}: {exc}"[:200]
        return res
    res.e2e_s = time.perf_counter() - t0
    res.ok = True
    return res


async def run_level(
    url: str,
    headers: dict[str, str],
    model: str,
    prompts: Sequence[list[dict[str, str]]],
    concurrency: int,
    n: int,
    max_tokens: int,
    timeout_s: float,
    warmup: int = 0,
) -> dict[str, Any]:
    """``n`` requests with at most ``concurrency`` in flight; returns the level's summary."""
    import httpx

    endpoint = url.rstrip("/") + "/chat/completions"
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        for i in range(warmup):
            await one_request(
                client, endpoint, headers, model, prompts[i % len(prompts)], max_tokens
            )
        queue = list(range(n))
        results: list[RequestResult] = []

        async def worker() -> None:
            while queue:
                i = queue.pop(0)
                results.append(
                    await one_request(
                        client, endpoint, headers, model, prompts[i % len(prompts)], max_tokens
                    )
                )

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
        duration = time.perf_counter() - t0
    return summarize(results, concurrency, duration)


def _pct(values: Sequence[float]) -> dict[str, float | None]:
    if not len(values):
        return {"mean": None, "p50": None, "p90": None, "p95": None, "p99": None}
    a = np.asarray(values, dtype=float)
    return {
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
    }


def summarize(
    results: Sequence[RequestResult], concurrency: int, duration_s: float
) -> dict[str, Any]:
    """vLLM's serving metrics from the per-request timings (pure)."""
    ok = [r for r in results if r.ok]
    tpot = [
        (r.e2e_s - r.ttft_s) / (r.output_tokens - 1)
        for r in ok
        if r.ttft_s is not None and r.e2e_s is not None and r.output_tokens > 1
    ]
    out_tokens = sum(r.output_tokens for r in ok)
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "completed": len(ok),
        "errors": len(results) - len(ok),
        "error_samples": [r.error for r in results if not r.ok][:5],
        "duration_s": duration_s,
        "request_throughput": len(ok) / duration_s if duration_s else 0.0,
        "output_token_throughput": out_tokens / duration_s if duration_s else 0.0,
        "total_output_tokens": out_tokens,
        "total_prompt_tokens": sum(r.prompt_tokens for r in ok),
        "ttft_s": _pct([r.ttft_s for r in ok if r.ttft_s is not None]),
        "tpot_s": _pct(tpot),
        "itl_s": _pct([x for r in ok for x in r.itl_s]),
        "e2e_s": _pct([r.e2e_s for r in ok if r.e2e_s is not None]),
    }
