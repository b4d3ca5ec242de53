"""What every worker of the bare-metal fleet runs under ``ray up`` (``python -m cluster.onprem
node-start``): find this node in the inventory by its own addresses, check the inventory against
``nvidia-smi`` (the inventory is what the cost report bills, so a mismatch stops the node rather
than skewing the bill), then run the explicit ``ray start`` of ``onprem.ray_start_args``.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from cluster.accelerators import gpu_model_from_name
from cluster.config import ConfigError, Problem
from cluster.inventory import DEFAULT_PATH as INVENTORY
from cluster.inventory import Inventory, Node, load_inventory
from cluster.onprem import OnpremSettings, node_env, ray_start_args


def gpu_problems(node: Node, smi_names: list[str] | None) -> list[Problem]:
    """Compare the inventory with ``nvidia-smi --query-gpu=name`` (None: no nvidia-smi)."""
    where = f"{node.name}.gpu"
    fix = "fix the node, or correct cluster/inventory.yaml and re-render"
    if smi_names is None:
        return [Problem(where, node.gpu, "nvidia-smi is not available", fix)] if node.gpu else []
    if not node.gpu:
        found = f"the inventory lists none; nvidia-smi: {smi_names}"
        return [Problem(where, None, found, fix)] if smi_names else []
    out = []
    if len(smi_names) != node.gpu.count:
        found = f"nvidia-smi lists {len(smi_names)}"
        out.append(Problem(f"{where}.count", node.gpu.count, found, fix))
    models = sorted({gpu_model_from_name(n) for n in smi_names})
    if models and models != [node.gpu.model]:
        out.append(Problem(f"{where}.model", node.gpu.model, f"nvidia-smi reports {models}", fix))
    return out


def _this_node(inv: Inventory) -> Node:
    import psutil

    ip_families = (socket.AF_INET, socket.AF_INET6)
    addrs = [a for nic in psutil.net_if_addrs().values() for a in nic if a.family in ip_families]
    mine = {a.address for a in addrs}
    found = [n for n in inv.nodes if n.address in mine]
    if len(found) != 1:
        listed = ", ".join(f"{n.name}={n.address}" for n in inv.nodes)
        what = f"match {len(found)} inventory nodes ({listed})"
        fix = "run it on a node of this fleet, or fix the address in cluster/inventory.yaml"
        raise ConfigError("node-start", [Problem("this node's addresses", sorted(mine), what, fix)])
    return found[0]


def _smi_names() -> list[str] | None:
    cmd = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def node_start(fleet: str, settings: OnpremSettings, dry_run: bool = False) -> int:
    """Start Ray on this node as the inventory describes it, after checking the hardware."""
    inv = load_inventory(INVENTORY, fleet=fleet)
    node = _this_node(inv)
    problems = gpu_problems(node, _smi_names())
    if (os.cpu_count() or 0) < node.cpus:
        problems.append(Problem(f"{node.name}.cpus", node.cpus, f"this node has {os.cpu_count()}"))
    if problems:
        raise ConfigError(f"node {node.name}", problems)
    args = ray_start_args(inv, node, settings)
    args[0] = str(Path(sys.executable).with_name("ray"))
    print(shlex.join(args), flush=True)
    if dry_run:
        return 0
    return subprocess.run(args, env={**os.environ, **node_env(node, settings, inv.head)}).returncode
