"""``python -m serve.status [--address URL] [--json] [--watch S]``: apps, model deployments,
replicas and their state, and each replica's engine figures: requests running and waiting,
KV-cache use, time to first token and end-to-end latency. On the local cluster, or on a fleet's
head with ``--address http://10.10.0.10:8265`` (or RAY_API_SERVER_ADDRESS) and its token in
RAY_AUTH_TOKEN_PATH (cluster/address.py).

Replica states come from Serve (the dashboard's REST API); engine figures from vLLM's own
metrics, which Ray exports in Prometheus format on every node (``log_engine_metrics``). The
latency percentiles are estimated from vLLM's histograms, over the replica's whole life.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from typing import Any

import httpx

from cluster.address import ADDRESS_HELP, AddressError, Dashboard, resolve
from cluster.status import dashboard_get
from serve.deploy import details

# vLLM metric (without Ray's "ray_" prefix) -> the key it gets in a replica's stats
GAUGES = {
    "vllm_num_requests_running": "running",
    "vllm_num_requests_waiting": "waiting",
    "vllm_kv_cache_usage_perc": "kv_cache_usage",
}
COUNTERS = {
    "vllm_request_success_total": "requests",
    "vllm_generation_tokens_total": "generated_tokens",
}
HISTOGRAMS = {
    "vllm_time_to_first_token_seconds": "ttft",
    "vllm_e2e_request_latency_seconds": "e2e",
}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket where the
    cumulative count passes ``q`` (pure). ``buckets`` are (upper bound, cumulative count)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            span = count - below
            return lower + (upper - lower) * ((rank - below) / span if span else 0.0)
        lower, below = upper, count
    return lower


def engine_stats(text: str) -> dict[str, dict[str, Any]]:
    """Per-replica engine figures from a node's Prometheus text (pure): keyed by Serve's
    replica id, which Ray tags every metric of a replica with."""
    from prometheus_client.parser import text_string_to_metric_families

    stats: dict[str, dict[str, Any]] = defaultdict(dict)
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix("ray_")
            replica = sample.labels.get("ReplicaId")
            if not replica:
                continue
            if name in GAUGES:
                stats[replica][GAUGES[name]] = stats[replica].get(GAUGES[name], 0) + sample.value
            elif name in COUNTERS:
                key = COUNTERS[name]
                stats[replica][key] = stats[replica].get(key, 0) + sample.value
            elif name.endswith("_bucket") and name.removesuffix("_bucket") in HISTOGRAMS:
                key = HISTOGRAMS[name.removesuffix("_bucket")]
                buckets[(replica, key)].append((float(sample.labels["le"]), sample.value))
            if "model_name" in sample.labels and name.startswith("vllm_"):
                stats[replica]["model"] = sample.labels["model_name"]
    for (replica, key), rows in buckets.items():
        merged: dict[float, float] = defaultdict(float)
        for le, count in rows:  # several label sets (finish reasons) share the bounds
            merged[le] += count
        pairs = list(merged.items())
        stats[replica][f"{key}_p50_s"] = histogram_quantile(0.5, pairs)
        stats[replica][f"{key}_p95_s"] = histogram_quantile(0.95, pairs)
    return dict(stats)


def scrape(cluster: Dashboard) -> dict[str, dict[str, Any]]:
    """Engine figures of every replica on every alive node of the cluster."""
    nodes = dashboard_get(cluster, "/nodes?view=summary").get("data", {}).get("summary", [])
    out: dict[str, dict[str, Any]] = {}
    for node in nodes:
        port = (node.get("raylet") or {}).get("metricsExportPort")
        if not port or (node.get("raylet") or {}).get("state") == "DEAD":
            continue
        try:
            text = httpx.get(f"http://{node['ip']}:{port}/metrics", timeout=30).text
        except httpx.HTTPError:
            continue
        out.update(engine_stats(text))
    return out


def gather(cluster: Dashboard) -> dict[str, Any]:
    d = details(cluster)
    engines = scrape(cluster) if d.get("applications") else {}
    out: dict[str, Any] = {"apps": {}}
    for name, app in (d.get("applications") or {}).items():
        deps = {}
        for dname, dep in (app.get("deployments") or {}).items():
            cfg = dep.get("deployment_config") or {}
            replicas = [
                {
                    "replica_id": r.get("replica_id"),
                    "state": r.get("state"),
                    "node_ip": r.get("node_ip"),
                    "engine": engines.get(r.get("replica_id"), {}),
                }
                for r in dep.get("replicas", [])
            ]
            deps[dname] = {
                "status": dep.get("status"),
                "replicas": replicas,
                "target_num_replicas": dep.get("target_num_replicas"),
                "autoscaling": cfg.get("autoscaling_config"),
                "num_replicas": cfg.get("num_replicas"),
            }
        out["apps"][name] = {
            "status": app.get("status"),
            "route_prefix": app.get("route_prefix"),
            "deployments": deps,
        }
    return out


def render(state: dict[str, Any]) -> str:
    if not state["apps"]:
        return "no Serve apps running (deploy one: python -m serve deploy)"
    lines = []
    for name, app in state["apps"].items():
        lines.append(f"app {name}: {app['status']} at {app['route_prefix']}")
        for dname, dep in app["deployments"].items():
            auto = dep["autoscaling"]
            scale = (
                f"autoscaling {auto.get('min_replicas')}..{auto.get('max_replicas')}, "
                f"target {auto.get('target_ongoing_requests')} ongoing/replica"
                if auto
                else f"fixed {dep['num_replicas']}"
            )
            running = sum(r["state"] == "RUNNING" for r in dep["replicas"])
            lines.append(
                f"  {dname}: {dep['status']}, {running} running "
                f"(target {dep['target_num_replicas']}), {scale}"
            )
            for r in dep["replicas"]:
                e = r["engine"]
                extra = ""
                if e:
                    extra = (
                        f" | running {e.get('running', 0):.0f} waiting {e.get('waiting', 0):.0f}"
                        f" KV cache {e.get('kv_cache_usage', 0):.0%} | "
                        f"{e.get('requests', 0):.0f} requests, {e.get('generated_tokens', 0):.0f}"
                        f" tokens; TTFT p50 {_ms(e.get('ttft_p50_s'))} ms, e2e p50 "
                        f"{_ms(e.get('e2e_p50_s'))} ms p95 {_ms(e.get('e2e_p95_s'))} ms"
                    )
                lines.append(f"    {r['replica_id']} {r['state']} on {r['node_ip']}{extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.status", description=__doc__)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS")
    p.add_argument("--address", help=ADDRESS_HELP)
    a = p.parse_args(argv)
    try:
        cluster = resolve(a.address)
    except AddressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = cluster.problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    while True:
        state = gather(cluster)
        print(json.dumps(state, indent=2) if a.json else render(state), flush=True)
        if not a.watch:
            return 0
        time.sleep(a.watch)
        print()


if __name__ == "__main__":
    sys.exit(main())
