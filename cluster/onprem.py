"""The bare-metal cluster and the Kubernetes Serve config, generated from what is committed: the
Ray cluster-launcher config ``cluster/onprem.yaml`` from the ``onprem`` fleet of
``cluster/inventory.yaml``, and ``k8s/rayservice.yaml``'s ``serveConfigV2`` from
``serve/config.yaml``. Tests fail when either generated file is stale.

    python -m cluster render-onprem [--fleet onprem] [--out cluster/onprem.yaml] [--check]
    ray up cluster/onprem.yaml                            # from the repo root (docs/onprem.md)
    python -m cluster.onprem start-command --node h100-01 # one node's exact `ray start`
    python -m cluster.onprem node-start --fleet onprem    # what every worker runs under `ray up`
    python -m cluster.onprem serve-config --target onprem # serve/config.yaml for the fleet
    python -m cluster.onprem k8s-serve [--check]          # refresh k8s/rayservice.yaml

The local provider runs one worker start command on every worker, but the workers differ
(8xH100, 4xL40S). So each worker runs ``node-start``: it finds itself in the inventory by its
own addresses, checks the inventory against ``nvidia-smi`` (model and count; the inventory is
what the cost report bills, so a mismatch stops the node instead of skewing the bill) and runs
the explicit ``ray start`` that :func:`ray_start_args` builds, the same one the docs print.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cluster.config import ConfigError, Problem
from cluster.inventory import DEFAULT_PATH as INVENTORY
from cluster.inventory import Inventory, Node, load_inventory

REPO = Path(__file__).resolve().parents[1]
ONPREM_YAML = Path(__file__).with_name("onprem.yaml")
PROJECT_DIR = "~/onprem-llm"  # where file_mounts puts the code on every node
# What a node needs of the repo (k8s/Dockerfile copies the same). Not "." as a whole: `ray up`
# hashes every file it syncs, and .venv/ and models/ are gigabytes.
PROJECT_FILES = (
    "pyproject.toml",
    "constraints.txt",
    "README.md",
    "cluster",
    "jobs",
    "serve",
    "data",
)


@dataclass(frozen=True)
class Ports:
    """Every port Ray opens, pinned so the firewall can name them (Ray picks some at random)."""

    gcs: int = 6379
    dashboard: int = 8265  # dashboard + Jobs API
    client: int = 10001  # Ray client server
    agent_http: int = 52365
    agent_grpc: int = 8078
    runtime_env_agent: int = 8079
    object_manager: int = 8076
    node_manager: int = 8077
    metrics: int = 8080
    min_worker: int = 10002
    max_worker: int = 19999
    serve_http: int = 8000


@dataclass(frozen=True)
class OnpremSettings:
    """What the inventory does not say: the shared mount, the ssh login, the ports."""

    root: str = "/mnt/onprem"  # NFS mount on every node: models/, runs/, reports/, .cluster/
    ssh_user: str = "ray"
    ssh_private_key: str = "~/.ssh/onprem_ray"
    python: str = "python3.11"
    ports: Ports = field(default_factory=Ports)

    @property
    def token_path(self) -> str:
        return f"{self.root}/.cluster/auth_token"

    @property
    def api_key_path(self) -> str:
        """The Serve API key, made with the token; every node exports it as ONPREM_API_KEY."""
        return f"{self.root}/.cluster/api_key"

    @property
    def secrets_env(self) -> str:
        """Optional KEY=VALUE file (mode 600): ONPREM_API_KEY, HF_TOKEN, ONPREM_LEDGER_URL, ..."""
        return f"{self.root}/.cluster/secrets.env"


# -- the fleet and each node's `ray start` ---------------------------------------------------


def fleet_problems(inv: Inventory) -> list[Problem]:
    """A multi-node fleet needs distinct private, non-loopback addresses."""
    out = []
    for i, node in enumerate(inv.nodes):
        try:
            ip = ipaddress.ip_address(node.address)
        except ValueError:
            out.append(Problem(f"nodes.{i}.address", node.address, "is not an IP address"))
            continue
        if not ip.is_private or ip.is_loopback or ip.is_unspecified or ip.is_link_local:
            out.append(
                Problem(
                    f"nodes.{i}.address",
                    node.address,
                    "is not a private, routable address",
                    "give the node's private-network IP (the laptop fleet runs `cluster up`)",
                )
            )
    seen = [n.address for n in inv.nodes]
    dupes = sorted({a for a in seen if seen.count(a) > 1})
    if dupes:
        out.append(Problem("address", dupes, "several nodes share an address", "fix the IPs"))
    return out


def node_env(node: Node, settings: OnpremSettings, head: Node) -> dict[str, str]:
    """Environment of the node's Ray processes (jobs, actors and replicas inherit it)."""
    return {
        "ONPREM_ROOT": settings.root,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": settings.token_path,
        # PyTorch spin-waits its OpenMP threads by default: slow steps when processes share cores.
        "OMP_WAIT_POLICY": "PASSIVE",
        "ONPREM_ACCELERATOR_TYPE": node.accelerator_type,
        # Several nodes write the ledger: SQLite is refused, Postgres is the default here.
        "ONPREM_MULTI_NODE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        # The platform's own API (Serve on the head's private address): the only address jobs
        # send ONPREM_API_KEY to (cluster/endpoint_keys.py).
        "ONPREM_API_URL": f"http://{head.address}:{settings.ports.serve_http}",
    }


def ray_start_args(inv: Inventory, node: Node, settings: OnpremSettings) -> list[str]:
    """The exact ``ray start`` for one node: its address, CPUs, GPUs, accelerator type, labels."""
    p = settings.ports
    head = inv.head
    args = ["ray", "start"]
    if node is head:
        args += [
            "--head",
            f"--port={p.gcs}",
            "--include-dashboard=true",
            f"--dashboard-host={head.address}",
            f"--dashboard-port={p.dashboard}",
            f"--ray-client-server-port={p.client}",
        ]
    else:
        args.append(f"--address={head.address}:{p.gcs}")
    args += [
        f"--node-ip-address={node.address}",
        f"--object-manager-port={p.object_manager}",
        f"--node-manager-port={p.node_manager}",
        f"--dashboard-agent-listen-port={p.agent_http}",
        f"--dashboard-agent-grpc-port={p.agent_grpc}",
        f"--runtime-env-agent-port={p.runtime_env_agent}",
        f"--metrics-export-port={p.metrics}",
        f"--min-worker-port={p.min_worker}",
        f"--max-worker-port={p.max_worker}",
        f"--num-cpus={node.cpus}",
        f"--num-gpus={node.gpu_count}",
    ]
    if node.gpu:
        # Ray's own name for the resource that `accelerator_type="H100"` requests.
        args.append("--resources=" + json.dumps({f"accelerator_type:{node.gpu.model}": 1}))
    args += [
        f"--labels=onprem/node={node.name},onprem/accelerator={node.accelerator_type}",
        "--disable-usage-stats",
    ]
    return args


def _exports(env: dict[str, str]) -> str:
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())


def _source_secrets(settings: OnpremSettings) -> str:
    path, key = settings.secrets_env, settings.api_key_path
    return (
        f"if [ -f {path} ]; then set -a && . {path} && set +a; fi"
        f' && if [ -z "${{ONPREM_API_KEY:-}}" ] && [ -f {key} ]; then'
        f' export ONPREM_API_KEY="$(cat {key})"; fi'
    )


def render_onprem(inv: Inventory, settings: OnpremSettings | None = None) -> dict[str, Any]:
    """The cluster-launcher config (``provider: type: local``) for a fleet. Pure."""
    settings = settings or OnpremSettings()
    problems = fleet_problems(inv)
    if problems:
        raise ConfigError(f"fleet {inv.fleet}", problems)
    head, workers = inv.head, [n for n in inv.nodes if n.role == "worker"]
    bin_ = f"{PROJECT_DIR}/.venv/bin"
    # Unquoted on purpose: `~` must expand; `ray up` writes the autoscaler config there.
    head_start = (
        f"{bin_}/ray {shlex.join(ray_start_args(inv, head, settings)[1:])}"
        " --autoscaling-config=~/ray_bootstrap_config.yaml"
    )
    root = settings.root
    return {
        "cluster_name": f"onprem-llm-{inv.fleet}",
        "provider": {
            "type": "local",
            "head_ip": head.address,
            "worker_ips": [n.address for n in workers],
        },
        "auth": {"ssh_user": settings.ssh_user, "ssh_private_key": settings.ssh_private_key},
        "min_workers": len(workers),
        "max_workers": len(workers),
        "file_mounts": {f"{PROJECT_DIR}/{name}": f"./{name}" for name in PROJECT_FILES},
        "rsync_exclude": ["__pycache__", "*.pyc"],
        "setup_commands": [
            f"mountpoint -q {root} || (echo 'mount the shared NFS export at {root} first' >&2"
            " && exit 1)",
            f"cd {PROJECT_DIR} && (test -x .venv/bin/python || {settings.python} -m venv .venv)"
            " && .venv/bin/pip install -q -c constraints.txt -e .",
        ],
        "head_setup_commands": [
            f"mkdir -p {root}/models {root}/runs {root}/reports"
            f" && (umask 077 && mkdir -p {root}/.cluster)",
            # One token for the whole cluster, on the shared mount, readable by the Ray user only.
            f"test -s {settings.token_path} || (umask 077 && {bin_}/python -c"
            f" 'import secrets; print(secrets.token_hex(32))' > {settings.token_path})",
            f"chmod 600 {settings.token_path}",
            # The Serve API key likewise: Serve refuses a non-loopback bind without one.
            f"test -s {settings.api_key_path} || (umask 077 && {bin_}/python -c"
            f" 'import secrets; print(secrets.token_hex(32))' > {settings.api_key_path})",
            f"chmod 600 {settings.api_key_path}",
        ],
        "worker_setup_commands": [],
        "head_start_ray_commands": [
            f"{bin_}/ray stop",
            " && ".join(
                [_source_secrets(settings), _exports(node_env(head, settings, head)), head_start]
            ),
        ],
        "worker_start_ray_commands": [
            f"{bin_}/ray stop",
            f"{_source_secrets(settings)} && cd {PROJECT_DIR} && {bin_}/python -m cluster.onprem"
            f" node-start --fleet {inv.fleet} --root {root}",
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Long commands and any string with ``": "`` as ``>-`` block scalars (readable, and the
    field-notes trap of a ``": "`` turning a list item into a mapping cannot happen)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = ">" if (": " in value or len(value) > 80) and "\n" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_onprem(inv: Inventory, settings: OnpremSettings | None = None) -> str:
    """``cluster/onprem.yaml``'s text: a header that says what each worker declares, then YAML."""
    settings = settings or OnpremSettings()
    config = render_onprem(inv, settings)
    lines = [
        f"# GENERATED from cluster/inventory.yaml (fleet {inv.fleet}) by",
        f"#   python -m cluster render-onprem --fleet {inv.fleet}",
        "# Edit the inventory or cluster/onprem.py, not this file: a test fails when it is stale.",
        "#",
        "#   ray up cluster/onprem.yaml      # from the repo root; see docs/onprem.md",
        "#",
        "# Every worker runs `python -m cluster.onprem node-start`, which finds the node in the",
        "# inventory by its own address, checks the GPUs with nvidia-smi and starts Ray with:",
    ]
    for node in inv.nodes:
        if node.role == "worker":
            lines.append(
                f"#   {node.name} ({node.address}): --num-cpus={node.cpus}"
                f" --num-gpus={node.gpu_count} accelerator_type:{node.accelerator_type}"
                f" onprem/node={node.name}"
            )
    body = yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=96)
    return "\n".join(lines) + "\n" + body


def write_onprem(out: Path = ONPREM_YAML, fleet: str = "onprem", check: bool = False) -> bool:
    """Write (or with ``check`` only compare) the config; True when the file was up to date."""
    text = dump_onprem(load_inventory(INVENTORY, fleet=fleet))
    current = out.read_text() if out.is_file() else None
    if not check and current != text:
        out.write_text(text)
    return current == text


def _wrap(words: list[str], width: int = 92) -> str:
    lines = [""]
    for word in map(shlex.quote, words):
        if lines[-1] and len(lines[-1]) + len(word) > width:
            lines.append("")
        lines[-1] += (" " if lines[-1] else "") + word
    return " \\\n    ".join(lines)


def manual_commands(inv: Inventory, node: Node, settings: OnpremSettings) -> str:
    """What to type on one node to start it by hand, as the launcher would (docs/onprem.md)."""
    env = node_env(node, settings, inv.head)
    return "\n".join(
        [
            f"# {node.name} ({node.address}), in {PROJECT_DIR} with its .venv activated",
            _source_secrets(settings),
            "export " + " \\\n    ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            "ray stop",
            _wrap(ray_start_args(inv, node, settings)),
        ]
    )


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.onprem",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    render = sub.add_parser("render-onprem", help="write cluster/onprem.yaml from the inventory")
    render.add_argument("--fleet", default="onprem")
    render.add_argument("--out", type=Path, default=ONPREM_YAML)
    render.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    start = sub.add_parser("start-command", help="print one node's exact `ray start`")
    start.add_argument("--fleet", default="onprem")
    start.add_argument("--node", help="node name (default: every node)")
    start.add_argument("--root", default=OnpremSettings.root)
    ns = sub.add_parser("node-start", help="on a node: check the GPUs and start Ray")
    ns.add_argument("--fleet", default="onprem")
    ns.add_argument("--root", default=OnpremSettings.root)
    ns.add_argument("--dry-run", action="store_true", help="check and print, do not start")
    sc = sub.add_parser("serve-config", help="print serve/config.yaml adjusted for a target")
    sc.add_argument("--target", choices=["onprem", "k8s"], default="onprem")
    sc.add_argument("--fleet", default="onprem")
    k8s = sub.add_parser("k8s-serve", help="refresh serveConfigV2 in k8s/rayservice.yaml")
    k8s.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    try:
        if args.cmd in ("render-onprem", "k8s-serve"):
            if args.cmd == "render-onprem":
                path, fresh = args.out, write_onprem(args.out, args.fleet, check=args.check)
            else:
                from cluster.serve_configs import RAYSERVICE, write_rayservice

                path, fresh = RAYSERVICE, write_rayservice(check=args.check)
            print(f"{path}: {'up to date' if fresh else 'STALE' if args.check else 'written'}")
            return 1 if args.check and not fresh else 0
        settings = OnpremSettings(root=getattr(args, "root", OnpremSettings.root))
        if args.cmd == "node-start":
            from cluster.node_start import node_start

            return node_start(args.fleet, settings, dry_run=args.dry_run)
        inv = load_inventory(INVENTORY, fleet=args.fleet)
        if args.cmd == "start-command":
            for node in inv.nodes:
                if args.node in (None, node.name):
                    print(manual_commands(inv, node, settings))
        elif args.cmd == "serve-config":
            from cluster.serve_configs import SERVE_CONFIG, serve_config

            base = yaml.safe_load(SERVE_CONFIG.read_text())
            config = serve_config(base, args.target, head_ip=inv.head.address)
            print(yaml.safe_dump(config, sort_keys=False, width=96), end="")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
