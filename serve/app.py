"""The Ray Serve application: Ray's own LLM serving (``ray.serve.llm``: an OpenAI-compatible
ingress in front of one vLLM ``LLMServer`` deployment per base model), built from the
``args`` of ``serve/config.yaml`` with what this platform adds:

- model sources from the model store (``model_source: smollm2-135m-instruct`` or a folder such
  as ``runs/<run>/merged``), checked before anything is deployed;
- LoRA adapters from local run folders or store entries, served as ``<base>:<adapter>``
  (Ray's own ``lora_config.dynamic_lora_loading_path`` serves adapters from ``s3://``);
- CPU defaults for vLLM (KV-cache size, OpenMP threads) when a model is placed on CPUs;
- a bearer API key on every route but ``/health``, with OpenAI-shaped 401s, and 503 with
  ``Retry-After`` when a model's request queue is full; no key on a non-loopback bind is a
  deploy error unless ``allow_anonymous: true``; request caps (``limits``, serve/limits.py);
- replica-hours in the usage ledger.

    serve run serve/config.yaml          # or: serve deploy serve/config.yaml
    curl -H "Authorization: Bearer $ONPREM_API_KEY" http://127.0.0.1:8000/v1/models
"""

# FastAPI reads the route signatures at runtime: no `from __future__ import annotations` here.

import copy
import hmac
import logging
import os
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray._common.constants import HEAD_NODE_RESOURCE_NAME
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    to_model_metadata,
)
from ray.llm._internal.serve.core.ingress.ingress import (
    OpenAiIngress,
    init,
    make_fastapi_ingress,
)
from ray.llm._internal.serve.core.server.builder import build_llm_deployment
from ray.llm._internal.serve.core.server.llm_server import LLMServer as RayLLMServer
from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader
from ray.serve.llm import LLMConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, StreamingResponse

from cluster.llm import adapter_rank, cpu_engine_defaults, engine_env, lora_engine_kwargs, on_cpu
from cluster.secret_checks import startup_secret_problems
from serve.faults import ProgressWatchdog, stream_with_error_event
from serve.guard import (
    RequestLimitsMiddleware,
    adapter_name_problem,
    anonymous_problem,
    key_required,
    serve_http_host,
)
from serve.limits import RequestLimits, engine_limits_env

log = logging.getLogger("ray.serve")

HEALTH_PATHS = ("/health",)


class AppArgs(BaseModel):
    """The ``args`` of the application in ``serve/config.yaml``."""

    model_config = ConfigDict(extra="forbid")

    llm_configs: list[dict[str, Any]] = Field(
        min_length=1,
        description="one Ray `LLMConfig` per base model (model_loading_config, engine_kwargs, "
        "placement_group_config, deployment_config, ...), plus `adapters`: LoRA adapters of "
        "that model, name -> runs/<run>/adapter or a store entry, served as <model_id>:<name>",
    )
    api_key_env: str = Field(
        default="ONPREM_API_KEY",
        description="env var holding the API key; when set, every route but /health needs "
        "'Authorization: Bearer <key>'. Unset on a non-loopback http_options.host: the app "
        "refuses to start (see allow_anonymous)",
    )
    allow_anonymous: bool = Field(
        default=False,
        description="serve without an API key on a non-loopback host (a gateway in front "
        "authenticates); loopback hosts never need it",
    )
    limits: RequestLimits = Field(
        default_factory=RequestLimits, description="caps on each request (4xx beyond them)"
    )
    ingress_deployment_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Serve options of the OpenAI ingress deployment (default: Ray LLM's, on "
        "the head node with no CPU, so a lost worker node never takes the ingress with it)",
    )
    usage_interval_s: float = Field(default=30.0, gt=0, description="ledger flush period")
    health_stall_s: float = Field(
        default=300.0,
        gt=0,
        description="a replica with requests in flight and no output for this long fails its "
        "health check and is replaced (longer than your slowest non-streamed answer)",
    )


# -- building the app --------------------------------------------------------------------------
def _is_remote(ref: str) -> bool:
    return ref.startswith(("s3://", "gs://", "abfss://", "azure://", "hf://"))


def resolve_model_source(ref: str) -> str:
    """A store name or folder as an absolute folder (remote URIs pass through)."""
    from cluster.store import ModelStore

    return ref if _is_remote(ref) else str(ModelStore().resolve(ref))


def _app_env_vars() -> dict[str, str]:
    """The app's runtime_env variables, when building inside Serve (empty elsewhere)."""
    import ray

    if not ray.is_initialized():
        return {}
    return dict((ray.get_runtime_context().runtime_env or {}).get("env_vars") or {})


def llm_config(
    raw: dict[str, Any], limits: RequestLimits | None = None
) -> tuple[LLMConfig, dict[str, str]]:
    """A Ray ``LLMConfig`` from one ``llm_configs`` entry, and its local adapters (name ->
    folder). Store names become folders; LoRA and CPU settings are filled in where the entry
    leaves them out; with ``limits``, vLLM's own request caps are set to the same values."""
    from cluster.store import ModelStore

    cfg = copy.deepcopy(raw)
    adapters = cfg.pop("adapters", None) or {}
    loading = cfg.setdefault("model_loading_config", {})
    loading["model_source"] = resolve_model_source(
        loading.get("model_source") or loading.get("model_id", "")
    )
    model_id = loading.get("model_id", "")
    bad = [p for p in (adapter_name_problem(f"{model_id}:{name}") for name in adapters) if p]
    if bad:
        raise ValueError(f"llm_configs: adapters: {'; '.join(bad)}")
    store = ModelStore()
    local = {name: str(store.resolve_adapter(ref)) for name, ref in adapters.items()}
    engine = cfg.setdefault("engine_kwargs", {})
    for key, value in cpu_engine_defaults(cfg.get("placement_group_config")).items():
        engine.setdefault(key, value)
    cpu = on_cpu(cfg.get("placement_group_config"))
    if local or cfg.get("lora_config"):
        lora = cfg.setdefault("lora_config", {})
        lora.setdefault("max_num_adapters_per_replica", max(1, len(local)))
        ranks = [adapter_rank(folder) for folder in local.values()]
        slots = lora["max_num_adapters_per_replica"]
        for key, value in lora_engine_kwargs(ranks, slots, cpu=cpu).items():
            engine.setdefault(key, value)
    # Ray LLM gives a replica the model's runtime_env in place of the app's, env_vars and all:
    # the app's variables (S3 endpoint and keys, the API key) are carried into each model's,
    # under the engine defaults and the model's own settings.
    env = {
        **_app_env_vars(),
        **engine_env(cfg.get("placement_group_config")),
        **(engine_limits_env(limits) if limits else {}),
    }
    if env:
        env.update((cfg.get("runtime_env") or {}).get("env_vars") or {})
        cfg.setdefault("runtime_env", {})["env_vars"] = env
    cfg["server_cls"] = LLMServer
    return LLMConfig.model_validate(cfg), local


def ingress_options(llm_configs: list[LLMConfig], overrides: dict[str, Any]) -> dict[str, Any]:
    """Serve options of the OpenAI ingress: Ray LLM's defaults, on the head node beside the
    proxy and holding no CPU, then the config's ``ingress_deployment_config``.

    On the head because every request passes through it: a worker node lost takes model
    replicas with it, which Serve routes around, but an ingress replica lost stops all
    traffic until Serve replaces it (the likely cause of 15 s without answers seen on the
    multi-node test fleet before this). The head's loss ends the cluster anyway."""
    return {
        **OnPremIngress.get_deployment_options(llm_configs),
        "ray_actor_options": {"num_cpus": 0, "resources": {HEAD_NODE_RESOURCE_NAME: 0.001}},
        **overrides,
    }


def build_app(args: dict[str, Any]) -> Any:
    """Application builder named by ``serve/config.yaml`` (``serve.app:build_app``): Ray's
    ``build_openai_app`` wiring, with this module's ingress and server classes."""
    parsed = AppArgs.model_validate(args)  # a bad config fails at deploy, with field names
    secrets = startup_secret_problems(os.environ, parsed.api_key_env)
    if secrets:
        raise ValueError("refusing to start: " + "; ".join(secrets))
    host, key = serve_http_host(), os.environ.get(parsed.api_key_env)
    problem = anonymous_problem(host, key, parsed.allow_anonymous, parsed.api_key_env)
    if problem:
        raise ValueError(problem)
    require_key = key_required(host, key, parsed.allow_anonymous)
    built = [llm_config(raw, parsed.limits) for raw in parsed.llm_configs]
    ids = [cfg.model_id for cfg, _ in built]
    if len(set(ids)) != len(ids):
        raise ValueError(f"llm_configs: model ids must be unique (got {ids})")
    deployments = {
        cfg.model_id: build_llm_deployment(
            cfg,
            bind_kwargs={
                "adapters": local,
                "usage_interval_s": parsed.usage_interval_s,
                "health_stall_s": parsed.health_stall_s,
            },
        )
        for cfg, local in built
    }
    cards = {cfg.model_id: to_model_metadata(cfg.model_id, cfg) for cfg, _ in built}
    cloud = {
        cfg.model_id: cfg.lora_config.dynamic_lora_loading_path
        for cfg, _ in built
        if cfg.lora_config is not None and cfg.lora_config.dynamic_lora_loading_path
    }
    options = ingress_options([cfg for cfg, _ in built], parsed.ingress_deployment_config)
    app = _fastapi_app(parsed.api_key_env, parsed.limits, require_key)
    ingress = make_fastapi_ingress(OnPremIngress, app=app)
    return serve.deployment(ingress, **options).bind(
        llm_deployments=deployments,
        model_cards=cards,
        lora_paths=cloud,
        local_adapters={cfg.model_id: sorted(local) for cfg, local in built},
        api_key_env=parsed.api_key_env,
    )


# -- the model replicas ------------------------------------------------------------------------
class LocalLoraLoader(LoraModelLoader):
    """Ray's LoRA loader, which downloads adapters from cloud storage, taught to serve the
    adapters that already sit in folders of the shared filesystem without copying them."""

    def __init__(self, adapters: dict[str, str], **kwargs: Any):
        super().__init__(**kwargs)
        self.adapters = adapters

    async def load_model_from_config(self, lora_model_id: str, llm_config: LLMConfig) -> Any:
        from ray.llm._internal.common.models import global_id_manager
        from ray.llm._internal.common.utils.lora_utils import get_lora_id
        from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig

        name = get_lora_id(lora_model_id)
        if name not in self.adapters:
            return await super().load_model_from_config(lora_model_id, llm_config)
        if lora_model_id not in self.disk_cache:
            self.disk_cache[lora_model_id] = DiskMultiplexConfig(
                model_id=lora_model_id,
                max_total_tokens=None,
                local_path=self.adapters[name],
                lora_assigned_int_id=global_id_manager.next(),
            )
        return self.disk_cache[lora_model_id]


class LLMServer(RayLLMServer):
    """Ray's vLLM server with local LoRA folders and replica-hours in the usage ledger."""

    async def __init__(
        self,
        llm_config: LLMConfig,
        *,
        adapters: dict[str, str] | None = None,
        usage_interval_s: float = 30.0,
        health_stall_s: float = 300.0,
        **kwargs: Any,
    ):
        adapters = adapters or {}
        kwargs.setdefault("model_downloader", lambda **kw: LocalLoraLoader(adapters, **kw))
        self.progress = ProgressWatchdog(health_stall_s)
        await super().__init__(llm_config, **kwargs)
        self.usage = _replica_usage(llm_config.model_id, usage_interval_s)

    async def _run_request(self, request: Any, **kwargs: Any) -> Any:
        return self.progress.watch(await super()._run_request(request, **kwargs))

    async def check_health(self) -> None:
        """Ray's engine check, and a stuck engine (work waiting, no output) is unhealthy."""
        problem = self.progress.problem()
        if problem:
            log.error("health check failed: %s", problem)
            raise RuntimeError(problem)
        await super().check_health()

    async def __del__(self) -> None:
        usage = getattr(self, "usage", None)
        if usage is not None:
            usage.close()
        await super().__del__()


def _replica_usage(model_id: str, interval_s: float) -> Any:
    """Open this replica's ``serve`` record in the ledger: what its placement group holds
    (the engine's bundles and the replica's own), added up every ``interval_s``."""
    import ray

    from serve.usage import ReplicaUsage

    pg = ray.util.get_current_placement_group()
    if pg is not None:
        bundles = pg.bundle_specs
    else:
        bundles = [ray.get_runtime_context().get_assigned_resources()]
    cpus = sum(float(b.get("CPU", 0)) for b in bundles)
    gpus = sum(float(b.get("GPU", 0)) for b in bundles)
    replica = serve.get_replica_context().replica_id.unique_id
    app = serve.get_replica_context().app_name
    return ReplicaUsage(f"{app}/{model_id}/{replica}", cpus, gpus, interval_s=interval_s)


# -- the OpenAI-compatible front ---------------------------------------------------------------
def _error(status: int, message: str, type: str, code: str | None, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or None)


CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def message_problem(messages: Any) -> str | None:
    """What makes a request's ``messages`` unusable, or None (pure). vLLM's request schema
    accepts any mapping as a message and fails later with a server error on, say, a missing
    role, so the ingress checks the shape first and answers 400."""
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of {role, content} objects"
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            return f"{where} must be an object with role and content"
        role = msg.get("role")
        if role not in CHAT_ROLES:
            return f"{where}.role {role!r} is not one of {', '.join(CHAT_ROLES)}"
        content = msg.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    return f"{where}.content[{j}] must be an object with a string 'type'"
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    return f"{where}.content[{j}].text must be a string"
        elif content is not None and not isinstance(content, str):
            return f"{where}.content must be a string, a list of parts or null"
    return None


class APIKeyMiddleware:
    """Every HTTP route but ``/health``, and every websocket, needs ``Authorization: Bearer
    <key>`` when ``env`` holds a key (compared in constant time); a missing or wrong key gets
    OpenAI's 401. With ``required`` (the app was built needing a key), an empty ``env`` at
    request time is a 401 too: the check fails closed, never open."""

    def __init__(self, app: Any, env: str = "ONPREM_API_KEY", required: bool = False):
        self.app, self.env, self.required = app, env, required

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        key = os.environ.get(self.env) or ""
        checked = scope["type"] in ("http", "websocket") and scope.get("path") not in HEALTH_PATHS
        if checked and (key or self.required):
            sent = dict(scope.get("headers") or []).get(b"authorization", b"")
            token = sent[7:].strip() if sent[:7].lower() == b"bearer " else b""
            if not key or not token or not hmac.compare_digest(token, key.encode()):
                await self._refuse(scope, receive, send, bool(key))
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: dict, receive: Any, send: Any, has_key: bool) -> None:
        if not has_key:
            log.error("%s is empty but the app was built to require it: refusing", self.env)
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        resp = _error(
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            "authentication_error",
            "invalid_api_key",
        )
        await resp(scope, receive, send)  # for a websocket: Starlette's denial response


def _fastapi_app(
    api_key_env: str, limits: RequestLimits | None = None, require_key: bool = False
) -> Any:
    """Ray's ingress app (its error handling, CORS, request ids, HTTP metrics) with this
    platform's API-key check in front, then the request caps, and a ``/health`` route."""
    app = init()
    app.add_middleware(RequestLimitsMiddleware, limits=limits)  # the key is checked first
    app.add_middleware(APIKeyMiddleware, env=api_key_env, required=require_key)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers {"detail": ...}; OpenAI clients read {"error": {...}}.
        code = "model_not_found" if exc.status_code == 404 else None
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error(exc.status_code, str(exc.detail), kind, code, **(exc.headers or {}))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


class OnPremIngress(OpenAiIngress):
    """Ray's OpenAI ingress that also lists and routes the local adapters of each base model
    (``<base>:<adapter>``) and answers a full request queue with 503 and ``Retry-After``."""

    def __init__(
        self,
        llm_deployments: dict[str, Any],
        model_cards: dict[str, ModelCard],
        *,
        lora_paths: dict[str, str] | None = None,
        local_adapters: dict[str, list[str]] | None = None,
        api_key_env: str = "ONPREM_API_KEY",
    ):
        super().__init__(llm_deployments, model_cards, lora_paths=lora_paths)
        self._local = {
            f"{base}:{name}": base
            for base, names in (local_adapters or {}).items()
            for name in names
        }
        if not os.environ.get(api_key_env):
            log.warning("%s is not set: the API accepts requests without a key", api_key_env)

    async def _get_model_id(self, model: str | None) -> str:
        from fastapi import HTTPException

        problem = adapter_name_problem(model)
        if problem:  # before Ray joins the name to a loading path
            raise HTTPException(400, problem)
        model_id = await super()._get_model_id(model)
        base = model_id.split(":", 1)[0]
        if model_id != base and model_id not in self._local and base not in self._lora_paths:
            available = ", ".join([*self._model_cards, *self._local])
            raise HTTPException(404, f"model {model_id!r} does not exist; available: {available}")
        return model_id

    async def model(self, model_id: str) -> ModelCard | None:
        if adapter_name_problem(model_id):  # GET /v1/models/<id>: 404, no path is joined
            return None
        base = self._local.get(model_id)
        if base is None:
            return await super().model(model_id)
        card = self._model_cards[base]
        return ModelCard(
            id=model_id,
            object="model",
            owned_by=card.owned_by,
            permission=list(card.permission),
            metadata={**card.metadata, "base_model_id": base},
        )

    async def models(self) -> ModelList:
        listed = await super().models()
        local = [await self.model(m) for m in self._local]
        return ModelList(data=[*listed.data, *local])

    async def chat(self, body: ChatCompletionRequest, request: Request) -> Any:
        problem = message_problem(body.messages)
        if problem:
            return _error(400, problem, "invalid_request_error", "invalid_messages")
        return await super().chat(body, request)

    async def _process_llm_request(
        self, body: Any, call_method: str, raw_request: Request | None = None
    ) -> Any:
        """Ray's request path, with three faults answered: a full queue gets 503 and
        ``Retry-After``; a replica lost before the first chunk (its node went away) is retried
        once on another, since nothing has reached the client yet; one lost mid-stream ends
        the stream with an error event (serve/faults.py)."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
        from ray.serve.exceptions import BackPressureError

        for attempt in range(2):
            try:
                resp = await super()._process_llm_request(body, call_method, raw_request)
                if isinstance(resp, StreamingResponse):  # a replica lost mid-stream: say so
                    resp.body_iterator = stream_with_error_event(resp.body_iterator)
                return resp
            except BackPressureError:
                return _error(
                    503,
                    "the server is at capacity (request queue full); retry shortly",
                    "server_error",
                    "overloaded",
                    **{"Retry-After": "1"},
                )
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                if attempt:
                    raise
                log.warning("replica lost before answering (%s); retrying", type(exc).__name__)
        raise AssertionError("unreachable")
