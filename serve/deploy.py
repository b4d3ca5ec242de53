"""Deploy ``serve/config.yaml`` (optionally with overrides) through the dashboard's REST API,
the same call ``serve deploy`` makes, and read the running apps back."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml

from cluster.local import LocalCluster

CONFIG = Path(__file__).with_name("config.yaml")


def load_config(path: str | Path = CONFIG) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def with_overrides(
    config: dict[str, Any],
    *,
    port: int | None = None,
    args: dict[str, Any] | None = None,
    deployments: dict[str, dict[str, Any]] | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of ``config`` with the HTTP port, app args, per-deployment options or the
    runtime env changed (first application)."""
    out = copy.deepcopy(config)
    if port is not None:
        out.setdefault("http_options", {})["port"] = port
    app = out["applications"][0]
    if args:
        app["args"] = {**app.get("args", {}), **args}
    if runtime_env:
        app["runtime_env"] = {**app.get("runtime_env", {}), **runtime_env}
    for name, options in (deployments or {}).items():
        dep = next(d for d in app["deployments"] if d["name"] == name)
        for key, value in options.items():
            if value is None:
                dep.pop(key, None)
            elif isinstance(value, dict) and isinstance(dep.get(key), dict):
                dep[key] = {**dep[key], **value}
            else:
                dep[key] = value
    return out


def client(cluster: LocalCluster) -> Any:
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    return ServeSubmissionClient(cluster.dashboard_url, headers=cluster.auth_headers())


def details(cluster: LocalCluster) -> dict[str, Any]:
    return client(cluster).get_serve_details()


def deploy(cluster: LocalCluster, config: dict[str, Any]) -> None:
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(config)  # fail here, with field names, not in the cluster
    client(cluster).deploy_applications(config)


def wait_running(
    cluster: LocalCluster, app: str = "llm", timeout_s: float = 300.0, replicas: int | None = None
) -> dict[str, Any]:
    """Wait until ``app`` is RUNNING (and has ``replicas`` running replicas, if given)."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = details(cluster).get("applications", {}).get(app) or {}
        status = last.get("status")
        if status == "DEPLOY_FAILED":
            raise RuntimeError(f"app {app!r} failed to deploy: {last.get('message')}")
        if status == "RUNNING" and (replicas is None or running_replicas(last) == replicas):
            return last
        time.sleep(1.0)
    raise TimeoutError(
        f"app {app!r} not running after {timeout_s:.0f} s: "
        f"{last.get('status')} {last.get('message', '')}"
    )


def running_replicas(app: dict[str, Any], deployment: str = "LLMServer") -> int:
    dep = (app.get("deployments") or {}).get(deployment) or {}
    return sum(r.get("state") == "RUNNING" for r in dep.get("replicas", []))


def deployed_config(cluster: LocalCluster) -> dict[str, Any]:
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


def undeploy(cluster: LocalCluster, timeout_s: float = 120.0) -> None:
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
