"""What ``python -m cluster status [--address URL]`` prints: nodes, resource use, recent jobs,
Serve apps.

Everything is read over the dashboard's HTTP API with the cluster's token, so it works from any
machine that can reach the dashboard (the local cluster, a fleet's head, a port-forwarded
KubeRay head; cluster/address.py) and never joins the cluster as a driver.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from typing import Any

from cluster.address import ClusterAddress, Dashboard
from cluster.ledger import Ledger
from cluster.local import LocalCluster


def dashboard_get(cluster: Dashboard, path: str, timeout: float = 30.0) -> Any:
    req = urllib.request.Request(cluster.dashboard_url + path, headers=cluster.auth_headers())
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def running_replicas(app: dict[str, Any], model: str | None = None) -> int:
    """Running model replicas of a Serve app's details (every model's, or ``model``'s: Ray
    Serve LLM names its deployment ``LLMServer:<model id>``; an adapter is served by its
    base's)."""
    base = model.split(":", 1)[0] if model else None
    return sum(
        r.get("state") == "RUNNING"
        for name, dep in (app.get("deployments") or {}).items()
        if name.startswith("LLMServer:") and (base is None or name == f"LLMServer:{base}")
        for r in dep.get("replicas", [])
    )


def _fmt_ts(ms: float | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%m-%d %H:%M:%S")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join("  " + line for line in lines)


def render_status(cluster: ClusterAddress | LocalCluster) -> str:
    if isinstance(cluster, LocalCluster):
        cluster = cluster.address()
    problem = cluster.problem()
    if problem:
        return f"cluster: down or unreachable: {problem}"
    gcs = f"GCS port {cluster.gcs_port}, " if cluster.gcs_port else ""
    out = [f"cluster: up, dashboard and Jobs API at {cluster.dashboard_url}, {gcs}token auth on"]
    nodes = dashboard_get(cluster, "/api/v0/nodes?detail=1&limit=100")["data"]["result"]["result"]
    rows = []
    for n in nodes:
        res = n.get("resources_total") or {}
        labels = n.get("labels") or {}
        accel = labels.get("onprem/accelerator") or next(
            (k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), "CPU"
        )
        rows.append(
            [
                n["node_id"][:12],
                n["node_ip"],
                n["state"],
                "head" if n.get("is_head_node") else "worker",
                f"{res.get('CPU', 0):g}",
                f"{res.get('GPU', 0):g}",
                accel,
                f"{res.get('memory', 0) / 2**30:.1f}",
            ]
        )
    out += [
        "nodes:",
        _table(rows, ["node", "ip", "state", "role", "CPU", "GPU", "accel", "mem GiB"]),
    ]
    usage = (
        dashboard_get(cluster, "/api/cluster_status").get("data", {}).get("clusterStatus") or {}
    ).get("loadMetricsReport", {}).get("usage") or {}
    totals = {
        "CPU": sum((n.get("resources_total") or {}).get("CPU", 0) for n in nodes),
        "GPU": sum((n.get("resources_total") or {}).get("GPU", 0) for n in nodes),
    }
    parts = []
    for key, total in totals.items():
        if key in usage:
            parts.append(f"{key} {usage[key][0]:g}/{usage[key][1]:g}")
        elif total:
            parts.append(f"{key} ?/{total:g} (usage not reported yet)")
    mem = usage.get("objectStoreMemory")
    if mem:
        parts.append(f"object store {mem[0] / 2**20:.0f}/{mem[1] / 2**20:.0f} MiB")
    out.append("resources in use: " + ", ".join(parts))
    jobs = cluster.job_client().list_jobs()
    jobs = sorted((j for j in jobs if j.submission_id), key=lambda j: j.start_time or 0)[-10:]
    jrows = [
        [
            j.submission_id,
            str(getattr(j.status, "value", j.status)),
            _fmt_ts(j.start_time),
            f"{((j.end_time or 0) - (j.start_time or 0)) / 1000:.0f}s" if j.end_time else "-",
            (j.entrypoint or "")[:60],
        ]
        for j in jobs
    ]
    out += [
        "jobs (latest 10):",
        _table(jrows, ["submission id", "status", "started", "took", "entrypoint"])
        if jrows
        else "  none",
    ]
    apps = dashboard_get(cluster, "/api/serve/applications/").get("applications") or {}
    if apps:
        arows = [
            [
                name,
                a.get("status", "?"),
                a.get("route_prefix") or "-",
                ", ".join(
                    f"{d}: {len(v.get('replicas', []))} replicas"
                    for d, v in (a.get("deployments") or {}).items()
                ),
            ]
            for name, a in apps.items()
        ]
        out += ["serve apps:", _table(arows, ["app", "status", "route", "deployments"])]
    else:
        out.append("serve apps: none")
    return "\n".join(out)


def import_jobs(cluster: LocalCluster, ledger: Ledger | None = None) -> int:
    """Add jobs run by hand (``ray job submit`` without our tooling) to the usage ledger."""
    jobs = cluster.job_client().list_jobs()
    return (ledger or Ledger()).import_ray_jobs(jobs, default_accelerator=cluster.accelerator_type)
