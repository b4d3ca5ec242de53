"""The Ray Serve application: ``OpenAIIngress`` (FastAPI: auth, validation, OpenAI errors,
streaming) in front of ``LLMServer`` replicas (the model, its LoRA adapters and the
continuous-batching engine), autoscaled on ongoing requests.

    serve run serve/config.yaml          # or: serve deploy serve/config.yaml
    curl http://127.0.0.1:8000/v1/models

Built by :func:`build_app` from the ``args`` of ``serve/config.yaml``.
"""

# FastAPI reads the route signatures at runtime: no `from __future__ import annotations` here.

import asyncio
import contextlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.api import (
    DONE,
    APIError,
    ChatCompletionRequest,
    check_request,
    chunk,
    completion,
    error_body,
    finish_reason,
    inline_schema,
    new_id,
    usage,
)

log = logging.getLogger("ray.serve")


def _replica_lost_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorUnavailableError, RayActorError

    return (RayActorError, ActorUnavailableError)


_REPLICA_LOST = _replica_lost_errors()


class AppArgs(BaseModel):
    """The ``args`` of the application in ``serve/config.yaml``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="base model: model store name or HF folder")
    served_model_name: str | None = Field(default=None, description="id in /v1/models")
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="name -> adapter folder (runs/<run>/adapter) or store entry",
    )
    max_batch_size: int = Field(default=16, ge=1, le=512, description="sequences per forward")
    max_tokens_limit: int = Field(default=1024, ge=1, description="largest max_tokens allowed")
    default_max_tokens: int = Field(default=256, ge=1)
    api_key_env: str = Field(
        default="ONPREM_API_KEY",
        description="env var holding the API "
        "key; when it is set, requests must send it as a Bearer token",
    )
    threads: int | None = Field(default=None, ge=1, description="torch threads per replica")
    usage_interval_s: float = Field(default=30.0, gt=0)
    stream_interval_ms: float = Field(
        default=0,
        ge=0,
        description="after the first token, send a stream's text at most this often (tokens "
        "that arrive meanwhile go in one message, fewer hops per token); 0 = every token. "
        "Measured here: no throughput change at 16 users (prefill-bound), so off by default",
    )


# Module-level helpers come before the deployments: Serve serializes the deployment
# classes, and the helpers they call must already exist when it does.
def _actor_resources() -> tuple[float, float]:
    import ray

    res = ray.get_runtime_context().get_assigned_resources()
    return float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0))


async def _first_event(stream: Any) -> dict[str, Any]:
    from ray.serve.exceptions import BackPressureError

    try:
        return await stream.__anext__()
    except BackPressureError:
        raise APIError(
            503,
            "the server is at capacity (request queue full); retry shortly",
            type="server_error",
            code="overloaded",
            headers={"Retry-After": "1"},
        ) from None


async def _sse(stream: Any, cid: str, model: str, include_usage: bool) -> AsyncIterator[str]:
    yield chunk(cid, model, {"role": "assistant", "content": ""})
    try:
        async for event in stream:
            if "delta" in event:
                yield chunk(cid, model, {"content": event["delta"]})
            elif "finish" in event:
                yield chunk(cid, model, {}, finish_reason=event["finish"])
                if include_usage:
                    yield chunk(cid, model, {}, usage_=event["usage"], choices=False)
            elif "error" in event:
                yield f"data: {json.dumps(event['error'])}\n\n"
    except asyncio.CancelledError:
        stream.cancel()
        raise
    yield DONE


# -- the model replicas ----------------------------------------------------------------------
@serve.deployment(name="LLMServer")
class LLMServer:
    def __init__(self, args: dict[str, Any], app_name: str = "llm"):
        from ray.util import metrics

        from cluster.inference.engine import BackgroundEngine, Engine
        from cluster.inference.loading import load_for_inference
        from serve.stats import RollingStats
        from serve.usage import ReplicaUsage

        self.args = AppArgs.model_validate(args)
        self.app_name = app_name
        self.lm = load_for_inference(self.args.model, self.args.adapters)
        self.engine = Engine(
            self.lm.model,
            self.lm.tokenizer,
            eos_ids=self.lm.eos_ids(),
            max_batch_size=self.args.max_batch_size,
            context_len=self.lm.context_len,
            device=self.lm.device,
            adapters=list(self.lm.adapters),
        )
        self.bg = BackgroundEngine(self.engine, self.args.threads)
        self.stats = RollingStats()
        ctx = serve.get_replica_context()
        self.replica = ctx.replica_id.unique_id
        resources = _actor_resources()
        self.usage = ReplicaUsage(
            f"{app_name}/{self.replica}",
            resources[0],
            resources[1],
            interval_s=self.args.usage_interval_s,
        )
        tags = ("model",)
        self.m_requests = metrics.Counter(
            "onprem_requests_total", "requests finished", tag_keys=(*tags, "finish")
        )
        self.m_errors = metrics.Counter(
            "onprem_request_errors_total", "requests that failed", tag_keys=tags
        )
        self.m_tokens = metrics.Counter(
            "onprem_generated_tokens_total", "tokens generated", tag_keys=tags
        )
        self.m_ttft = metrics.Histogram(
            "onprem_time_to_first_token_seconds",
            "TTFT",
            boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
            tag_keys=tags,
        )
        self.m_e2e = metrics.Histogram(
            "onprem_request_latency_seconds",
            "end-to-end latency",
            boundaries=[0.1, 0.5, 1, 2, 5, 10, 30, 60, 120],
            tag_keys=tags,
        )
        self.m_queue = metrics.Gauge("onprem_queue_depth", "requests waiting for a batch slot")
        self.m_running = metrics.Gauge("onprem_running_requests", "sequences in the batch")
        self.m_tps = metrics.Gauge("onprem_tokens_per_second", "generated tokens/s (60 s)")
        self._stop = threading.Event()
        threading.Thread(target=self._report, name="stats", daemon=True).start()
        log.info(
            "LLMServer %s ready: %s on %s (%s), adapters: %s",
            self.replica,
            self.args.model,
            self.lm.device,
            self.lm.dtype,
            list(self.lm.adapters) or "-",
        )

    def _report(self) -> None:
        from serve.stats import write_snapshot

        while not self._stop.wait(2.0):
            snap = self.stats.snapshot()
            snap.update(
                waiting=len(self.engine.waiting),
                running=len(self.engine.running),
                device=self.lm.device,
                max_batch_size=self.engine.max_batch_size,
            )
            self.m_queue.set(snap["waiting"])
            self.m_running.set(snap["running"])
            self.m_tps.set(snap["tokens_per_s"])
            with contextlib.suppress(OSError):
                write_snapshot(self.app_name, self.replica, snap)

    def check_health(self) -> None:
        if not self.bg.thread.is_alive():
            raise RuntimeError("the engine thread died")

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self.usage.close()
            self.bg.stop()

    async def generate(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Stream one request: first an ``accepted`` event (or an ``error``), then text
        deltas, then ``finish`` with usage."""
        from cluster.chat import prompt_tokens
        from cluster.inference.engine import Request, SamplingParams

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()
        tok = self.lm.tokenizer
        try:
            ids, prefix_len = prompt_tokens(tok, payload["messages"])
            params = SamplingParams(
                max_tokens=payload["max_tokens"],
                temperature=payload["temperature"],
                top_p=payload["top_p"],
                stop=payload["stop"],
                seed=payload["seed"],
            )
            req = Request(
                ids,
                params,
                adapter=payload["adapter"],
                on_event=lambda r, d: loop.call_soon_threadsafe(queue.put_nowait, d),
                prefix_len=prefix_len,
            )
            self.bg.submit(req)
        except ValueError as exc:  # prompt too long for the context, unknown adapter
            yield {"error": error_body(str(exc), param="messages"), "status": 400}
            return
        yield {"accepted": True, "prompt_tokens": len(ids)}
        model = payload["model"]
        interval = self.args.stream_interval_ms / 1000
        try:
            first = True
            while True:
                parts = [await queue.get()]
                if parts[0] and not first and interval:
                    await asyncio.sleep(interval)
                while not queue.empty():
                    parts.append(queue.get_nowait())
                first = False
                if text := "".join(parts):
                    yield {"delta": text}
                if parts[-1] == "":  # the engine's final event: nothing follows it
                    break
        except asyncio.CancelledError:
            req.cancelled = True  # the client went away: free the batch slot
            raise
        ok = req.finish_reason in ("stop", "length")
        e2e = req.latency_s or 0.0
        self.stats.record(e2e, req.ttft_s, len(req.out_ids), ok)
        self.m_requests.inc(tags={"model": model, "finish": req.finish_reason or "?"})
        if req.out_ids:  # Ray's counters refuse an increment of 0 (an answer of just EOS)
            self.m_tokens.inc(len(req.out_ids), tags={"model": model})
        self.m_e2e.observe(e2e, tags={"model": model})
        if req.ttft_s is not None:
            self.m_ttft.observe(req.ttft_s, tags={"model": model})
        if not ok:
            self.m_errors.inc(tags={"model": model})
            yield {
                "error": error_body(
                    f"generation failed: {req.error or req.finish_reason}", type="server_error"
                ),
                "status": 500,
            }
            return
        yield {
            "finish": finish_reason(req.finish_reason),
            "text": req.text,
            "usage": usage(len(ids), len(req.out_ids)),
        }

    async def stats_snapshot(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            **self.stats.snapshot(),
            "waiting": len(self.engine.waiting),
            "running": len(self.engine.running),
        }


# -- the OpenAI-compatible front --------------------------------------------------------------
api = FastAPI(
    title="onprem-llm",
    description="OpenAI-compatible chat completions on Ray Serve",
    version="0.1.0",
)


@api.exception_handler(APIError)
async def _api_error(_: Request, exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    return JSONResponse(
        error_body(first.get("msg", "invalid request"), param=param), status_code=400
    )


@api.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = "not_found" if exc.status_code == 404 else None
    return JSONResponse(error_body(str(exc.detail), code=code), status_code=exc.status_code)


# The body is parsed by hand (to answer malformed JSON in OpenAI's error shape), so the
# OpenAPI schema, which clients and fuzzers read, declares it explicitly.
_CHAT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": inline_schema(ChatCompletionRequest)}},
    }
}


@serve.deployment(name="OpenAIIngress")
@serve.ingress(api)
class OpenAIIngress:
    def __init__(self, llm: DeploymentHandle, args: dict[str, Any]):
        self.llm = llm
        self.args = AppArgs.model_validate(args)
        self.base_name = self.args.served_model_name or self.args.model
        self.models = [self.base_name, *self.args.adapters]

    def _auth(self, request: Request) -> None:
        key = os.environ.get(self.args.api_key_env)
        if not key:
            return
        sent = request.headers.get("authorization", "")
        token = sent.removeprefix("Bearer ").strip() if sent.startswith("Bearer ") else ""
        if not token or not hmac.compare_digest(token.encode(), key.encode()):
            raise APIError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                type="authentication_error",
                code="invalid_api_key",
            )

    @api.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/models")
    async def list_models(self, request: Request) -> dict[str, Any]:
        self._auth(request)
        now = int(time.time())
        return {
            "object": "list",
            "data": [
                {
                    "id": m,
                    "object": "model",
                    "created": now,
                    "owned_by": "onprem-llm",
                    "parent": None if m == self.base_name else self.base_name,
                }
                for m in self.models
            ],
        }

    @api.post("/v1/chat/completions", openapi_extra=_CHAT_BODY)
    async def chat(self, request: Request) -> Any:
        self._auth(request)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise APIError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        try:
            req = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise APIError(400, f"{param}: {first['msg']}", param=param) from None
        check_request(req, self.args.max_tokens_limit)
        if req.model not in self.models:
            raise APIError(
                404,
                f"model {req.model!r} does not exist; available: {', '.join(self.models)}",
                param="model",
                code="model_not_found",
            )
        payload = {
            "model": req.model,
            "adapter": None if req.model == self.base_name else req.model,
            "messages": [{"role": m.role, "content": m.text()} for m in req.messages],
            "max_tokens": req.max_completion_tokens
            or req.max_tokens
            or self.args.default_max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "stop": req.stop or [],
            "seed": req.seed,
        }
        if req.stream:
            stream, first = await self._start(payload)
            if "error" in first:
                return JSONResponse({"error": first["error"]["error"]}, status_code=first["status"])
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(
                _sse(stream, new_id(), req.model, include_usage), media_type="text/event-stream"
            )
        for attempt in range(2):  # nothing has reached the client yet: safe to run it again
            try:
                return await self._complete(payload, req.model)
            except _REPLICA_LOST as exc:
                if attempt:
                    raise
                log.warning(
                    "replica lost mid-request (%s); retrying on another", type(exc).__name__
                )
        raise AssertionError("unreachable")

    async def _start(self, payload: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Start a streamed generation; a replica that died before its first event is
        retried once on another (the client has seen nothing yet)."""
        for attempt in range(2):
            stream = self.llm.options(stream=True).generate.remote(payload)
            try:
                return stream, await _first_event(stream)
            except _REPLICA_LOST as exc:
                if attempt:
                    raise
                log.warning("replica lost before answering (%s); retrying", type(exc).__name__)
        raise AssertionError("unreachable")

    async def _complete(self, payload: dict[str, Any], model: str) -> Any:
        stream, first = await self._start(payload)
        if "error" in first:
            return JSONResponse({"error": first["error"]["error"]}, status_code=first["status"])
        cid = new_id()
        async for event in stream:
            if "error" in event:
                return JSONResponse({"error": event["error"]["error"]}, status_code=event["status"])
            if "finish" in event:
                u = event["usage"]
                return completion(
                    cid,
                    model,
                    event["text"],
                    event["finish"],
                    u["prompt_tokens"],
                    u["completion_tokens"],
                )
        raise APIError(
            500, "the model replica ended the request without an answer", type="server_error"
        )


def build_app(args: dict[str, Any]) -> Any:
    """Application builder named by ``serve/config.yaml`` (``serve.app:build_app``)."""
    parsed = AppArgs.model_validate(args)  # a bad config fails at deploy with field names
    plain = parsed.model_dump()
    app_name = os.environ.get("ONPREM_SERVE_APP", "llm")
    return OpenAIIngress.bind(LLMServer.bind(plain, app_name), plain)
