"""The OpenAI-compatible front of the Serve app: the FastAPI app every request passes through,
and the ingress deployment (Ray's public ``OpenAiIngress`` with this platform's local adapters
and fault answers), registered on that app by Ray's public ``make_fastapi_ingress``.

The app's layers, outermost first (each one's answers pass out through those above it):

1. request id: the one Serve's proxy sent in ``x-request-id`` (or a new one), for logs and
   error bodies;
2. CORS (``cors_allow_origins``): answers a browser's preflight itself, before any key check;
   adds its headers to every answer, errors included;
3. errors: an exception from anything inside becomes ``serve/errors.py``'s answer (4xx naming
   the field; otherwise a generic 500/503 with the request id; never a traceback);
4. the API key (401);
5. request checks (``serve/guard.py``: 413, 400, 404 before the body is parsed for a route);
6. FastAPI's own exception layer (HTTP exceptions, request-schema errors: OpenAI's shape), then
   the routes.

No ``BaseHTTPMiddleware`` (Ray's own app has one): each layer is plain ASGI, so a streamed
answer's chunks pass through without extra tasks or queues.
"""

# FastAPI reads the route signatures at runtime: no `from __future__ import annotations` here.

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.llm.ingress import OpenAiIngress
from ray.serve.llm.openai_api_models import EmbeddingRequest, TranscriptionRequest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response, StreamingResponse

from cluster.config import deep_merge
from serve.errors import (
    ErrorMiddleware,
    RequestIdMiddleware,
    answer_for,
    http_exception_handler,
    request_id,
    validation_exception_handler,
)
from serve.faults import stream_with_error_event
from serve.guard import (
    APIKeyMiddleware,
    ModelCatalog,
    RequestChecksMiddleware,
    adapter_name_problem,
)
from serve.limits import RequestLimits
from serve.ray_internals import HEAD_NODE_RESOURCE_NAME
from serve.request_models import CheckedChatCompletionRequest, CheckedCompletionRequest

log = logging.getLogger("ray.serve")


def ingress_app(
    api_key_env: str,
    limits: RequestLimits | None = None,
    require_key: bool = False,
    *,
    models: ModelCatalog | None = None,
    cors_allow_origins: Sequence[str] = ("*",),
) -> FastAPI:
    """The ingress's FastAPI app with the layers above and a ``/health`` route (the model
    routes are added by ``make_fastapi_ingress``)."""
    app = FastAPI()
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    # add_middleware puts each layer outside the ones added before it.
    app.add_middleware(RequestChecksMiddleware, limits=limits, models=models)
    app.add_middleware(APIKeyMiddleware, env=api_key_env, required=require_key)
    app.add_middleware(ErrorMiddleware)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors_allow_origins),
        allow_methods=["*"],
        allow_headers=["*"],  # Authorization and Content-Type among them
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app.add_middleware(RequestIdMiddleware)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def ingress_options(llm_configs: list[Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Serve options of the ingress: Ray LLM's defaults, on the head node beside the proxy and
    holding no CPU, with the config's ``ingress_deployment_config`` merged in key by key (a
    config that sets ``ray_actor_options.num_cpus`` keeps the head placement; one that sets
    its own ``resources`` replaces it; ``num_replicas`` replaces the default autoscaling, which
    Serve refuses beside it).

    On the head because every request passes through it: a worker node lost takes model
    replicas with it, which Serve routes around, but an ingress replica lost stops all
    traffic until Serve replaces it (the likely cause of 15 s without answers seen on the
    multi-node test fleet before this). The head's loss ends the cluster anyway."""
    defaults = {
        **OnPremIngress.get_deployment_options(llm_configs),
        "ray_actor_options": {"num_cpus": 0, "resources": {HEAD_NODE_RESOURCE_NAME: 0.001}},
    }
    if "num_replicas" in overrides:
        defaults.pop("autoscaling_config", None)
    options = deep_merge(defaults, overrides)
    own = (overrides.get("ray_actor_options") or {}).get("resources")
    if own is not None:
        options["ray_actor_options"]["resources"] = dict(own)
    return options


class OnPremIngress(OpenAiIngress):
    """Ray's OpenAI ingress that also lists and routes the local adapters of each base model
    (``<base>:<adapter>``), retries a request whose replica was lost before answering, and
    ends a stream whose replica is lost with an error event."""

    def __init__(
        self,
        llm_deployments: dict[str, Any],
        model_cards: dict[str, Any],
        *,
        lora_paths: dict[str, str] | None = None,
        local_adapters: dict[str, list[str]] | None = None,
        api_key_env: str = "ONPREM_API_KEY",
    ):
        super().__init__(llm_deployments, model_cards, lora_paths=lora_paths)
        self.cards = dict(model_cards)
        self.local = {
            f"{base}:{name}": base
            for base, names in (local_adapters or {}).items()
            for name in names
        }
        self.catalog = ModelCatalog.of(model_cards, local_adapters, lora_paths or {})
        if not os.environ.get(api_key_env):
            log.warning("%s is not set: the API accepts requests without a key", api_key_env)

    async def model(self, model_id: str) -> Any:
        if adapter_name_problem(model_id):  # GET /v1/models/<id>: 404, no path is joined
            return None
        base = self.local.get(model_id)
        if base is None:
            return await super().model(model_id)
        card = self.cards[base]
        metadata = {**card.metadata, "base_model_id": base}
        return card.model_copy(update={"id": model_id, "metadata": metadata})

    async def models(self) -> Any:
        listed = await super().models()
        local = [await self.model(m) for m in self.local]
        return listed.model_copy(update={"data": [*listed.data, *local]})

    async def chat(self, body: CheckedChatCompletionRequest, request: Request) -> Response:
        return await self._retried_once(super().chat, body, request)

    async def completions(self, body: CheckedCompletionRequest, request: Request) -> Response:
        return await self._retried_once(super().completions, body, request)

    async def embeddings(self, body: EmbeddingRequest, request: Request) -> Response:
        return await self._retried_once(super().embeddings, body, request)

    async def transcriptions(
        self, body: Annotated[TranscriptionRequest, Form()], request: Request
    ) -> Response:
        # A form body: the request checks (JSON bodies) cannot read its model name.
        problem = adapter_name_problem(body.model)
        if problem:
            raise HTTPException(400, problem)
        missing = self.catalog.missing(body.model)
        if missing:
            raise HTTPException(404, missing)
        return await self._retried_once(super().transcriptions, body, request)

    async def _retried_once(
        self, call: Callable[[Any, Request], Awaitable[Response]], body: Any, request: Request
    ) -> Response:
        """Ray's answer, with two faults handled: a replica lost before the first chunk (its
        node went away) is retried once on another, since nothing has reached the client yet
        (lost again: serve/errors.py answers 503); one lost mid-stream ends the stream with
        an error event (serve/faults.py)."""
        for attempt in (1, 2):
            try:
                resp = await call(body, request)
            except BackPressureError as exc:
                # Answered here: Serve registers its own handler for this exception on the app
                # (a plain-text 503 without Retry-After), which would replace ours.
                return answer_for(exc, request_id(request.scope))
            except RayActorError as exc:  # ActorDiedError, ActorUnavailableError
                if attempt == 2:
                    raise
                log.warning(
                    "request %s: replica lost before answering (%s); retrying",
                    request_id(request.scope),
                    type(exc).__name__,
                )
                continue
            if isinstance(resp, StreamingResponse):
                rid = request_id(request.scope)
                resp.body_iterator = stream_with_error_event(resp.body_iterator, rid)
            return resp
        raise AssertionError("unreachable")
