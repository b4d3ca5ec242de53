"""Change how many replicas serve a model, on the running app, without dropping requests.

    python -m serve.scale --model smollm2-support --min 1 --max 4   # autoscaling bounds
    python -m serve.scale --model smollm2-support --replicas 2      # a fixed number
    python -m serve.scale --address http://10.10.0.10:8265 --model smollm2-support --replicas 2

Without ``--address`` it scales the app on RAY_API_SERVER_ADDRESS, else on the local cluster;
the token comes from RAY_AUTH_TOKEN_PATH (cluster/address.py).

The change goes into the running config as an override of the model's deployment
(``deployments: [{name: LLMServer:<model>, ...}]``, Ray Serve's own mechanism), which Serve
applies in place: the engines keep running, replicas are only added or drained. Changing the
app's ``args`` instead would rebuild the app and restart every engine.

Changing the bounds or the fixed count is an in-place update: Serve keeps the running replicas
and adds or removes some; a removed replica finishes its in-flight requests first
(graceful_shutdown_timeout_s). Switching between a fixed count and autoscaling makes Serve roll
the replicas over (new ones start before old ones drain), which also drops no request.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any

from cluster.address import ADDRESS_HELP, AddressError, resolve
from cluster.local import ClusterError
from serve.deploy import deploy, deployed_config, wait_running


def scaled(
    config: dict[str, Any],
    app: str,
    model: str | None,
    *,
    min_replicas: int | None,
    max_replicas: int | None,
    replicas: int | None,
) -> tuple[dict[str, Any], str]:
    """``config`` with a model's replica settings overridden, and that model's id (pure). With
    one model in the app, ``model`` may be None."""
    target = next((a for a in config["applications"] if a["name"] == app), None)
    if target is None:
        names = ", ".join(a["name"] for a in config["applications"]) or "none"
        raise ValueError(f"no app named {app!r} is deployed (deployed: {names})")
    llms = (target.get("args") or {}).get("llm_configs") or []
    ids = [c["model_loading_config"]["model_id"] for c in llms]
    if model is None and len(ids) == 1:
        model = ids[0]
    if model not in ids:
        hint = difflib.get_close_matches(model or "", ids, n=1)
        raise ValueError(
            f"app {app!r} serves {', '.join(ids) or 'no models'}; "
            + (f"--model {model!r} is not one of them" if model else "say which with --model")
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    name = f"LLMServer:{model}"
    deps = target.setdefault("deployments", [])
    dep = next((d for d in deps if d["name"] == name), None)
    if dep is None:
        dep = {"name": name}
        deps.append(dep)
    if replicas is not None:
        dep.update(num_replicas=replicas, autoscaling_config=None)
        return config, model
    # The override replaces the whole autoscaling config: start from what is in force.
    configured = llms[ids.index(model)].get("deployment_config") or {}
    auto = dict(dep.get("autoscaling_config") or configured.get("autoscaling_config") or {})
    lo = min_replicas if min_replicas is not None else auto.get("min_replicas", 1)
    hi = max_replicas if max_replicas is not None else auto.get("max_replicas", lo)
    if hi < lo:
        raise ValueError(f"--max ({hi}) must be >= --min ({lo})")
    auto.update(min_replicas=lo, max_replicas=hi)
    if "initial_replicas" in auto:
        auto["initial_replicas"] = min(max(auto["initial_replicas"], lo), hi)
    dep.update(num_replicas="auto", autoscaling_config=auto)
    return config, model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m serve.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--min", type=int, dest="min_replicas", help="autoscaling minimum")
    p.add_argument("--max", type=int, dest="max_replicas", help="autoscaling maximum")
    p.add_argument("--replicas", type=int, help="fixed replica count (turns autoscaling off)")
    p.add_argument("--app", default="llm")
    p.add_argument("--model", help="the model id to scale (needed when the app serves several)")
    p.add_argument("--wait", action="store_true", help="wait until the new count is running")
    p.add_argument("--address", help=ADDRESS_HELP)
    a = p.parse_args(argv)
    if a.replicas is None and a.min_replicas is None and a.max_replicas is None:
        p.error("give --replicas N, or --min and/or --max")
    if a.replicas is not None and (a.min_replicas is not None or a.max_replicas is not None):
        p.error("--replicas turns autoscaling off: do not combine it with --min/--max")
    for name in ("replicas", "min_replicas", "max_replicas"):
        v = getattr(a, name)
        if v is not None and v < 0:
            p.error(f"--{name.replace('_replicas', '')} must be >= 0 (got {v})")
    try:
        cluster = resolve(a.address)
        problem = cluster.problem()
        if problem:
            raise ClusterError(problem)
        config, model = scaled(
            deployed_config(cluster),
            a.app,
            a.model,
            min_replicas=a.min_replicas,
            max_replicas=a.max_replicas,
            replicas=a.replicas,
        )
        deploy(cluster, config)
        if a.wait:
            wait_running(cluster, a.app, replicas=a.replicas, model=model)
    except (ValueError, ClusterError, AddressError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = (
        f"{a.replicas} replicas"
        if a.replicas is not None
        else f"autoscaling {a.min_replicas if a.min_replicas is not None else '='}.."
        f"{a.max_replicas if a.max_replicas is not None else '='} replicas"
    )
    print(f"{a.app}/{model}: {what} (python -m serve.status to follow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
