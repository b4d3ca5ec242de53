"""The bare-metal fleet's commands, in one place: what every node installs, what the head sets
up once (shared folders, the Ray token, the Serve API key), each node's environment and exact
``ray start``, and what a workstation copies to reach the cluster. ``cluster/onprem.yaml`` (the
``ray up`` config) and the manual commands in ``docs/onprem.md`` are both rendered from these
functions (cluster/onprem.py), and ``node-start`` (cluster/node_start.py) runs the same
``ray start``, so the launcher, the guide and the nodes cannot disagree.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass, field

from cluster.config import Problem
from cluster.inventory import Inventory, Node

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
# The CUDA build of vLLM 0.29.0 through Ray's `llm` extra (pyproject.toml), on every node: GPU
# workers run the engines, and the CPU head runs the OpenAI ingress and the job drivers, which
# import ray.serve.llm / ray.data.llm and so vLLM.
ENGINE_EXTRA = ".[cuda]"


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


def dashboard_url(inv: Inventory, settings: OnpremSettings) -> str:
    """The head's dashboard and Jobs API, on its private address."""
    return f"http://{inv.head.address}:{settings.ports.dashboard}"


# -- install and head setup ------------------------------------------------------------------


def install_command(settings: OnpremSettings) -> str:
    """Every node: a venv in the project folder, the pinned project with the CUDA engine."""
    return (
        f"cd {PROJECT_DIR} && (test -x .venv/bin/python || {settings.python} -m venv .venv)"
        f" && .venv/bin/pip install -q -c constraints.txt -e {shlex.quote(ENGINE_EXTRA)}"
    )


def mount_check(settings: OnpremSettings) -> str:
    root = settings.root
    return (
        f"mountpoint -q {root} || (echo 'mount the shared NFS export at {root} first' >&2"
        " && exit 1)"
    )


def _secret_file(path: str, python: str) -> list[str]:
    """Make a 64-hex-digit secret once, readable by the Ray user only."""
    return [
        f"test -s {path} || (umask 077 && {python} -c"
        f" 'import secrets; print(secrets.token_hex(32))' > {path})",
        f"chmod 600 {path}",
    ]


def head_setup_commands(settings: OnpremSettings) -> list[str]:
    """The head, once: the shared folders, one Ray token for the whole cluster and the Serve
    API key (Serve refuses a non-loopback bind without one), both on the shared mount."""
    root, python = settings.root, f"{PROJECT_DIR}/.venv/bin/python"
    return [
        f"mkdir -p {root}/models {root}/runs {root}/reports"
        f" && (umask 077 && mkdir -p {root}/.cluster)",
        *_secret_file(settings.token_path, python),
        *_secret_file(settings.api_key_path, python),
    ]


# -- each node's start -----------------------------------------------------------------------


def node_env(inv: Inventory, node: Node, settings: OnpremSettings) -> dict[str, str]:
    """Environment of the node's Ray processes (jobs, actors and replicas inherit it)."""
    return {
        "ONPREM_ROOT": settings.root,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": settings.token_path,
        # Tools run on a node (serve.status, bench_serve's replica watcher) reach the head's
        # dashboard, which listens on its private address, not on 127.0.0.1.
        "RAY_API_SERVER_ADDRESS": dashboard_url(inv, settings),
        # PyTorch spin-waits its OpenMP threads by default: slow steps when processes share cores.
        "OMP_WAIT_POLICY": "PASSIVE",
        "ONPREM_ACCELERATOR_TYPE": node.accelerator_type,
        # Several nodes write the ledger: SQLite is refused, Postgres is the default here.
        "ONPREM_MULTI_NODE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        # The platform's own API (Serve on the head's private address): the only address jobs
        # send ONPREM_API_KEY to (cluster/endpoint_keys.py).
        "ONPREM_API_URL": f"http://{inv.head.address}:{settings.ports.serve_http}",
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


def source_secrets(settings: OnpremSettings) -> str:
    """Read secrets.env if there is one, then the API key file unless secrets.env set a key."""
    path, key = settings.secrets_env, settings.api_key_path
    return (
        f"if [ -f {path} ]; then set -a && . {path} && set +a; fi"
        f' && if [ -z "${{ONPREM_API_KEY:-}}" ] && [ -f {key} ]; then'
        f' export ONPREM_API_KEY="$(cat {key})"; fi'
    )


def exports(env: dict[str, str], sep: str = " ") -> str:
    return "export " + sep.join(f"{k}={shlex.quote(v)}" for k, v in env.items())


# -- the workstation -------------------------------------------------------------------------

WORKSTATION_TOKEN = "~/.ray/onprem_token"
WORKSTATION_API_KEY = "~/.ray/onprem_api_key"


def workstation_commands(inv: Inventory, settings: OnpremSettings) -> list[str]:
    """Copy the token and the API key from the head (mode 600) and point the CLI at the head."""
    login = f"{settings.ssh_user}@{inv.head.address}"
    return [
        "(umask 077 && mkdir -p ~/.ray)",
        f"scp {login}:{settings.token_path} {WORKSTATION_TOKEN}",
        f"scp {login}:{settings.api_key_path} {WORKSTATION_API_KEY}",
        f"chmod 600 {WORKSTATION_TOKEN} {WORKSTATION_API_KEY}",
        f"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={WORKSTATION_TOKEN}"
        f" RAY_API_SERVER_ADDRESS={dashboard_url(inv, settings)}",
        f'export ONPREM_API_KEY="$(cat {WORKSTATION_API_KEY})"',
    ]
