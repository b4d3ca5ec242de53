"""Deploy ``serve/config.yaml`` (optionally with overrides) through the dashboard's REST API,
the same call ``serve deploy`` makes, and read the running apps back; on any cluster whose
dashboard answers (the local one, a fleet's head: cluster/address.py)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml

from cluster.address import Dashboard
from cluster.config import deep_merge
from cluster.status import running_replicas

CONFIG = Path(__file__).with_name("config.yaml")


def load_config(path: str | Path = CONFIG) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, nested dicts key by key; a None value removes the
    key (pure)."""
    return deep_merge(base, changes, none_removes=True)


def with_overrides(
    config: dict[str, Any],
    *,
    port: int | None = None,
    models: dict[str, str] | None = None,
    adapters: dict[str, str] | None = None,
    llm: dict[str, Any] | None = None,
    args: dict[str, Any] | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of ``config`` (first application) with another HTTP port; other models
    (``{model_id: store name or folder}``, each configured like the config's first model);
    other LoRA adapters of the first model; ``llm`` merged into every model's LLMConfig
    (e.g. ``{"deployment_config": {"num_replicas": 2}}``); other app args; a runtime env."""
    out = copy.deepcopy(config)
    if port is not None:
        out.setdefault("http_options", {})["port"] = port
    app = out["applications"][0]
    app_args = app.setdefault("args", {})
    if args:
        app_args.update(copy.deepcopy(args))
    if runtime_env:
        app["runtime_env"] = merged(app.get("runtime_env", {}), runtime_env)
    llms = app_args["llm_configs"]
    if models:
        template = {k: v for k, v in llms[0].items() if k != "adapters"}
        llms = [
            merged(template, {"model_loading_config": {"model_id": mid, "model_source": src}})
            for mid, src in models.items()
        ]
    if adapters is not None:
        llms[0] = {**llms[0], "adapters": dict(adapters)}
        if not adapters:
            llms[0].pop("adapters")
    app_args["llm_configs"] = [merged(c, llm or {}) for c in llms]
    return out


def client(cluster: Dashboard) -> Any:
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    return ServeSubmissionClient(cluster.dashboard_url, headers=cluster.auth_headers())


def details(cluster: Dashboard) -> dict[str, Any]:
    return client(cluster).get_serve_details()


def deploy(cluster: Dashboard, config: dict[str, Any]) -> None:
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(config)  # fail here, with field names, not in the cluster
    client(cluster).deploy_applications(config)


def wait_running(
    cluster: Dashboard,
    app: str = "llm",
    timeout_s: float = 300.0,
    replicas: int | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Wait until ``app`` is RUNNING (and, if given, has ``replicas`` running replicas of
    ``model``, or of all its models together)."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = details(cluster).get("applications", {}).get(app) or {}
        except OSError as exc:  # a dashboard too busy to answer in time: ask again
            last = {"status": "UNKNOWN", "message": f"dashboard did not answer: {exc}"}
            time.sleep(2.0)
            continue
        status = last.get("status")
        if status == "DEPLOY_FAILED":
            raise RuntimeError(f"app {app!r} failed to deploy: {last.get('message')}")
        if status == "RUNNING" and (replicas is None or running_replicas(last, model) == replicas):
            return last
        time.sleep(1.0)
    raise TimeoutError(
        f"app {app!r} not running after {timeout_s:.0f} s: "
        f"{last.get('status')} {last.get('message', '')}"
    )


def deployed_config(cluster: Dashboard) -> dict[str, Any]:
    """The full config currently deployed (every app), ready to modify and deploy again."""
    d = details(cluster)
    apps = [
        a["deployed_app_config"]
        for a in d.get("applications", {}).values()
        if a.get("deployed_app_config")
    ]
    out: dict[str, Any] = {"applications": apps}
    for key in ("http_options", "proxy_location"):
        if d.get(key) is not None:
            out[key] = d[key]
    return out


def undeploy(cluster: Dashboard, timeout_s: float = 120.0) -> None:
    """Delete every app and wait until Serve has shut down (a deploy sent while its
    controller is still exiting would be lost)."""
    client(cluster).delete_applications()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        d = details(cluster)
        if not d.get("applications") and not (d.get("controller_info") or {}).get("node_id"):
            return
        time.sleep(1.0)
    raise TimeoutError(f"Serve did not shut down within {timeout_s:.0f} s")
