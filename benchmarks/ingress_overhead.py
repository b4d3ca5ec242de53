"""What the ingress's own layers cost per request and per streamed chunk, in-process (no Ray,
no engine, no network): the ingress app before issue 22 (Ray LLM's ``init()`` app, whose error
handler is a ``BaseHTTPMiddleware``, with the key and the request caps on top) against this
app's (``serve/ingress.py``: plain ASGI layers), streaming the same chunks to 16 concurrent
requests; the request checks (``serve/guard.py``) on a typical chat body against a bare
``json.loads`` of it; and the route's validation of that body (vLLM's schema, and the app's
checked subclass of it, ``serve/request_models.py``).

    .venv/bin/python benchmarks/ingress_overhead.py [--requests 160] [--chunks 48] [--rounds 3]

Prints microseconds per request and per chunk for each app, round by round (alternating, so a
noisy neighbour hits both alike), and writes reports/benchmarks/ingress_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import timeit
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENV = "ONPREM_BENCH_INGRESS_KEY"
KEY = "b" * 40
CHUNK = 'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" word"}}]}\n\n'
BODY = json.dumps(
    {
        "model": "tiny",
        "messages": [
            {"role": "system", "content": "You are the support assistant of Pebblecrest. " * 8},
            {"role": "user", "content": "My order has not arrived yet, what can I do? " * 4},
            {"role": "assistant", "content": "Sorry to hear that. Could you share the number?"},
            {"role": "user", "content": "It is PC-20931, placed on Monday."},
        ],
        "max_tokens": 48,
        "temperature": 0.7,
        "stream": True,
    }
).encode()


def streaming_route(app: Any, chunks: int) -> None:
    from starlette.requests import Request
    from starlette.responses import StreamingResponse

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        await request.body()

        async def stream():
            for _ in range(chunks):
                await asyncio.sleep(0)  # the engine's next token arrives
                yield CHUNK
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")


def old_app(chunks: int) -> Any:
    """The ingress app before issue 22: Ray's init() with the key check and the caps on top."""
    from ray.llm._internal.serve.core.ingress.ingress import init

    from serve.guard import APIKeyMiddleware, RequestChecksMiddleware

    app = init()
    app.add_middleware(RequestChecksMiddleware)
    app.add_middleware(APIKeyMiddleware, env=ENV, required=True)
    streaming_route(app, chunks)
    return app


def new_app(chunks: int) -> Any:
    from serve.ingress import ingress_app

    app = ingress_app(ENV, require_key=True)
    streaming_route(app, chunks)
    return app


async def one_request(app: Any) -> int:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the answer streams
        return {"type": "http.disconnect"}

    got = 0

    async def send(message: dict) -> None:
        nonlocal got
        if message["type"] == "http.response.body" and message.get("body"):
            got += 1

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"x-request-id", b"bench"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    return got


async def run_users(app: Any, requests: int, users: int = 16) -> float:
    """Seconds for ``requests`` streamed requests, ``users`` at a time."""
    queue = list(range(requests))

    async def user() -> None:
        while queue:
            queue.pop()
            assert await one_request(app) > 0

    t0 = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(users)))
    return time.perf_counter() - t0


def checks_us(repeat: int = 2000) -> dict[str, float]:
    from serve.guard import ModelCatalog, RequestChecksMiddleware

    guard = RequestChecksMiddleware(None, models=ModelCatalog.of(["tiny"]))
    assert guard.refusal(BODY, "application/json") is None
    parse = min(timeit.repeat(lambda: json.loads(BODY), number=repeat, repeat=5)) / repeat
    full = min(
        timeit.repeat(lambda: guard.refusal(BODY, "application/json"), number=repeat, repeat=5)
    )
    out = {"json_loads_us": parse * 1e6, "request_checks_us": full / repeat * 1e6}
    # The route's own parse of the same body: vLLM's schema, and the app's checked subclass.
    from ray.serve.llm.openai_api_models import ChatCompletionRequest

    from serve.request_models import CheckedChatCompletionRequest

    data = json.loads(BODY)
    for name, cls in (("vllm_schema_us", ChatCompletionRequest),
                      ("checked_schema_us", CheckedChatCompletionRequest)):  # fmt: skip
        best = min(timeit.repeat(lambda c=cls: c.model_validate(data), number=200, repeat=5))
        out[name] = best / 200 * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    import os

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=160)
    p.add_argument("--chunks", type=int, default=48)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    os.environ[ENV] = KEY
    apps = {"before (Ray init() app)": old_app(args.chunks), "now": new_app(args.chunks)}
    seconds: dict[str, list[float]] = {name: [] for name in apps}
    for r in range(args.rounds):
        for name, app in apps.items():
            s = asyncio.run(run_users(app, args.requests))
            seconds[name].append(s)
            per_req = s / args.requests * 1e6
            per_chunk = s / (args.requests * (args.chunks + 1)) * 1e6
            print(f"round {r + 1} {name:24s} {per_req:8.0f} us/request {per_chunk:6.1f} us/chunk")
    result: dict[str, Any] = {"requests": args.requests, "chunks": args.chunks, "users": 16}
    for name, values in seconds.items():
        med = statistics.median(values)
        result[name] = {
            "us_per_request": med / args.requests * 1e6,
            "us_per_chunk": med / (args.requests * (args.chunks + 1)) * 1e6,
        }
    result["checks"] = checks_us()
    print(json.dumps(result, indent=2))
    out = REPO / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingress_overhead.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
