"""The Ray Serve application: Ray's own LLM serving (``ray.serve.llm``: an OpenAI-compatible
ingress in front of one vLLM ``LLMServer`` deployment per base model), built from the
``args`` of ``serve/config.yaml`` with what this platform adds:

- model sources from the model store (``model_source: smollm2-135m-instruct`` or a folder such
  as ``runs/<run>/merged``), checked before anything is deployed;
- LoRA adapters from local run folders or store entries, served as ``<base>:<adapter>``
  (Ray's own ``lora_config.dynamic_lora_loading_path`` serves adapters from ``s3://``);
- CPU defaults for vLLM (KV-cache size, OpenMP threads) when a model is placed on CPUs;
- the front (serve/ingress.py): a bearer API key on every route but ``/health``; CORS
  preflights answered without it; malformed requests and request caps answered 4xx before
  vLLM (serve/guard.py, serve/malformed.py, serve/limits.py); error bodies that never carry
  internals (serve/errors.py); no key on a non-loopback bind is a deploy error unless
  ``allow_anonymous: true``;
- a health check that fails when the engine is stuck, and replica-hours in the usage ledger.

Built from Ray's public ``ray.serve.llm`` builders; the few Ray internals it needs live in
serve/ray_internals.py.

    serve run serve/config.yaml          # or: serve deploy serve/config.yaml
    curl -H "Authorization: Bearer $ONPREM_API_KEY" http://127.0.0.1:8000/v1/models
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.llm import LLMConfig, build_llm_deployment
from ray.serve.llm.deployment import LLMServer as RayLLMServer
from ray.serve.llm.ingress import make_fastapi_ingress

from cluster.llm import adapter_rank, cpu_engine_defaults, engine_env, lora_engine_kwargs, on_cpu
from cluster.secret_checks import startup_secret_problems
from serve import ray_internals
from serve.faults import ProgressWatchdog
from serve.guard import (
    ModelCatalog,
    adapter_name_problem,
    anonymous_problem,
    key_required,
    serve_http_host,
)
from serve.ingress import OnPremIngress, ingress_app, ingress_options
from serve.limits import RequestLimits, engine_limits_env

log = logging.getLogger("ray.serve")


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
        description="Serve options of the OpenAI ingress deployment, merged key by key into "
        "the defaults (Ray LLM's, on the head node with no CPU, so a lost worker node never "
        "takes the ingress with it; a ray_actor_options.resources of its own replaces the "
        "head placement)",
    )
    cors_allow_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description="origins a browser may call the API from (CORS); a preflight is answered "
        "without the key, the request itself needs it. [] refuses every cross-origin call",
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


def build_app(args: dict[str, Any]) -> Any:
    """Application builder named by ``serve/config.yaml`` (``serve.app:build_app``): what Ray's
    ``build_openai_app`` wires (one ``LLMServer`` deployment per model behind an
    ``OpenAiIngress``), from Ray's public builders with this platform's server class, ingress
    class and ingress app (why not ``build_openai_app`` itself: serve/ray_internals.py)."""
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
    cloud = {
        cfg.model_id: cfg.lora_config.dynamic_lora_loading_path
        for cfg, _ in built
        if cfg.lora_config is not None and cfg.lora_config.dynamic_lora_loading_path
    }
    local_adapters = {cfg.model_id: sorted(local) for cfg, local in built}
    app = ingress_app(
        parsed.api_key_env,
        parsed.limits,
        require_key,
        models=ModelCatalog.of(ids, local_adapters, cloud),
        cors_allow_origins=parsed.cors_allow_origins,
    )
    options = ingress_options([cfg for cfg, _ in built], parsed.ingress_deployment_config)
    return serve.deployment(make_fastapi_ingress(OnPremIngress, app=app), **options).bind(
        llm_deployments=deployments,
        model_cards={cfg.model_id: ray_internals.model_card(cfg) for cfg, _ in built},
        lora_paths=cloud,
        local_adapters=local_adapters,
        api_key_env=parsed.api_key_env,
    )


# -- the model replicas ------------------------------------------------------------------------
class LocalLoraLoader:
    """The ``model_downloader`` of this app's server: adapters that already sit in folders of
    the shared filesystem are served in place, without copying; any other name goes to Ray's
    own loader, which downloads ``<lora_config.dynamic_lora_loading_path>/<name>``."""

    def __init__(self, adapters: dict[str, str], **kwargs: Any):
        self.adapters = adapters
        self.cloud = ray_internals.cloud_lora_loader(**kwargs)
        self.loaded: dict[str, Any] = {}

    async def load_model_from_config(self, lora_model_id: str, llm_config: LLMConfig) -> Any:
        name = lora_model_id.split(":", 1)[-1]
        if name not in self.adapters:
            return await self.cloud.load_model_from_config(lora_model_id, llm_config)
        if lora_model_id not in self.loaded:
            self.loaded[lora_model_id] = ray_internals.local_lora(
                lora_model_id, self.adapters[name]
            )
        return self.loaded[lora_model_id]


class LLMServer(RayLLMServer):
    """Ray's vLLM server with local LoRA folders, a health check that fails when the engine is
    stuck, and replica-hours in the usage ledger."""

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

    # The engine's outputs of each request that runs the engine, watched for progress.
    async def chat(self, request: Any, raw_request_info: Any = None) -> Any:
        return self.progress.watch(await super().chat(request, raw_request_info))

    async def completions(self, request: Any, raw_request_info: Any = None) -> Any:
        return self.progress.watch(await super().completions(request, raw_request_info))

    async def embeddings(self, request: Any, raw_request_info: Any = None) -> Any:
        return self.progress.watch(await super().embeddings(request, raw_request_info))

    async def transcriptions(self, request: Any, raw_request_info: Any = None) -> Any:
        return self.progress.watch(await super().transcriptions(request, raw_request_info))

    async def score(self, request: Any, raw_request_info: Any = None) -> Any:
        return self.progress.watch(await super().score(request, raw_request_info))

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
