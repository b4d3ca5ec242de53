"""``python -m serve.status``: apps, replicas and their state, queue depth and recent latency.

Replica states come from Serve (via the dashboard); queue, batch and latency figures from the
snapshot each replica writes every 2 s (the last 60 s of requests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cluster.local import LocalCluster
from serve.deploy import details
from serve.stats import read_snapshots


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def gather(cluster: LocalCluster) -> dict[str, Any]:
    d = details(cluster)
    out: dict[str, Any] = {"apps": {}}
    for name, app in (d.get("applications") or {}).items():
        snaps = read_snapshots(name)
        deps = {}
        for dname, dep in (app.get("deployments") or {}).items():
            cfg = dep.get("deployment_config") or {}
            replicas = []
            for r in dep.get("replicas", []):
                snap = snaps.get(r.get("replica_id"), {})
                fresh = snap and time.time() - snap.get("time", 0) < 10
                replicas.append(
                    {
                        "replica_id": r.get("replica_id"),
                        "state": r.get("state"),
                        "node_ip": r.get("node_ip"),
                        "stats": snap if fresh else {},
                    }
                )
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
        return "no Serve apps running (deploy one: serve deploy serve/config.yaml)"
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
                s = r["stats"]
                extra = ""
                if s:
                    extra = (
                        f" queue {s.get('waiting', 0)} running {s.get('running', 0)}/"
                        f"{s.get('max_batch_size', '?')} | last 60 s: "
                        f"{s.get('requests_in_window', 0)} req, p50 "
                        f"{_ms(s.get('e2e_p50_s'))} ms p95 {_ms(s.get('e2e_p95_s'))} ms, "
                        f"TTFT p50 {_ms(s.get('ttft_p50_s'))} ms, "
                        f"{s.get('tokens_per_s', 0):.1f} tok/s"
                    )
                lines.append(f"    {r['replica_id']} {r['state']} on {r['node_ip']}{extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.status", description=__doc__)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS")
    a = p.parse_args(argv)
    cluster = LocalCluster.from_env()
    if not cluster.is_up():
        print(
            f"error: no cluster answers at {cluster.dashboard_url} (python -m cluster up)",
            file=sys.stderr,
        )
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
