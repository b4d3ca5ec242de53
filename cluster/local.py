"""The local single-node cluster: a Ray head on fixed ports with token auth, started from the
project's virtualenv so submitted jobs find the same Python.

    python -m cluster up        # idempotent
    python -m cluster status    # nodes, resources, jobs, Serve apps
    python -m cluster down      # stops this cluster only (not every Ray on the machine)

Ports are fixed so that tools and docs can name them; one already taken is an error that names
the process holding it, never a silently moved port. Override with ONPREM_GCS_PORT,
ONPREM_DASHBOARD_PORT, ONPREM_CLIENT_PORT, ONPREM_AGENT_PORT.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from cluster import paths
from cluster.accelerators import local_gpus
from cluster.address import ClusterAddress
from cluster.secret_checks import startup_secret_problems


class ClusterError(RuntimeError):
    """The cluster cannot be started, reached or stopped; the message says why and the fix."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ClusterError(
            f"{name}={raw!r} is not an integer. Fix: e.g. {name}={default}"
        ) from None


# Ray's logical CPUs are scheduling slots, not threads. The demo's Serve app holds, at its
# peak, one engine bundle of 1 CPU per replica: two of the autoscaled model and one of the
# other (cluster/serve_configs.py's peak_cpus of serve/config.yaml: 3), and a job can run beside
# it (the evaluation on a rerun of the demo). A 2-core laptop offering 2 left the autoscaled
# model nowhere to put its second replica ("replicas: 1 at start, peak 1"). The engines' threads
# do not follow this count: vLLM's CPU backend runs unpinned (VLLM_CPU_OMP_THREADS_BIND=nobind,
# cluster/llm.py) and Ray sets each worker's OMP_NUM_THREADS from the CPUs of its own bundle.
MIN_LOGICAL_CPUS = 4


def default_cpus() -> int:
    """The logical CPUs the local head offers: this machine's cores, at least
    :data:`MIN_LOGICAL_CPUS` (``ONPREM_NUM_CPUS`` sets another count)."""
    return max(os.cpu_count() or 1, MIN_LOGICAL_CPUS)


@dataclass(frozen=True)
class LocalCluster:
    """Settings of the local head; ``from_env`` reads the overrides."""

    gcs_port: int = 6390
    dashboard_port: int = 8265
    client_port: int = 10001
    agent_port: int = 52365
    num_cpus: int = field(default_factory=default_cpus)
    # This machine's GPUs (nvidia-smi), so a GPU workstation runs the same jobs on CUDA.
    num_gpus: int = field(default_factory=lambda: len(local_gpus()))
    object_store_mb: int = 200
    accelerator_type: str = field(default_factory=lambda: (local_gpus() or ["CPU"])[0])
    root: Path = field(default_factory=paths.root)

    @classmethod
    def from_env(cls) -> LocalCluster:
        return cls(
            gcs_port=_env_int("ONPREM_GCS_PORT", 6390),
            dashboard_port=_env_int("ONPREM_DASHBOARD_PORT", 8265),
            client_port=_env_int("ONPREM_CLIENT_PORT", 10001),
            agent_port=_env_int("ONPREM_AGENT_PORT", 52365),
            num_cpus=_env_int("ONPREM_NUM_CPUS", default_cpus()),
            num_gpus=_env_int("ONPREM_NUM_GPUS", len(local_gpus())),
            object_store_mb=_env_int("ONPREM_OBJECT_STORE_MB", 200),
        )

    # -- where things are ----------------------------------------------------------------------
    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def state_dir(self) -> Path:
        return self.root / ".cluster"

    @property
    def temp_dir(self) -> Path:
        """Ray's session folder (logs, sockets) of this cluster. One per cluster, not Ray's
        shared /tmp/ray: Ray's job supervisor finds the cluster a job's driver joins through
        the "current cluster" file there, so with two clusters on one machine (a test cluster
        beside the demo's) jobs of one were sent to the other."""
        return Path(tempfile.gettempdir()) / f"ray-{self.gcs_port}"

    @property
    def token_path(self) -> Path:
        return self.state_dir / "auth_token"

    @property
    def api_key_path(self) -> Path:
        """The Serve API key (mode 0600), made with the token; the cluster's processes get it
        as ONPREM_API_KEY. ``export ONPREM_API_KEY=$(cat .cluster/api_key)`` for curl."""
        return self.state_dir / "api_key"

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"cluster-{self.gcs_port}.json"

    def ports(self) -> dict[str, int]:
        return {
            "GCS": self.gcs_port,
            "dashboard / Jobs API": self.dashboard_port,
            "Ray client": self.client_port,
            "dashboard agent": self.agent_port,
        }

    def client_env(self) -> dict[str, str]:
        """What a shell needs to talk to this cluster (``ray job submit``, the Python SDK)."""
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "RAY_API_SERVER_ADDRESS": self.dashboard_url,
            "ONPREM_ROOT": str(self.root),
        }

    def node_env(self) -> dict[str, str]:
        """Environment of every Ray process of the cluster, inherited by jobs and actors."""
        venv_bin = str(Path(sys.executable).parent)
        key = {}
        if not os.environ.get("ONPREM_API_KEY") and self.api_key_path.is_file():
            key["ONPREM_API_KEY"] = self.api_key_path.read_text().strip()
        return {
            **os.environ,
            **key,
            **self.client_env(),
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "RAY_USAGE_STATS_ENABLED": "0",
            # PyTorch spin-waits its OpenMP threads by default; with several processes on two
            # cores that turned ~3 s training steps into 4-52 s.
            "OMP_WAIT_POLICY": "PASSIVE",
            "TOKENIZERS_PARALLELISM": "false",
            "ONPREM_ACCELERATOR_TYPE": self.accelerator_type,
        }

    def auth_headers(self) -> dict[str, str]:
        if not self.token_path.is_file():
            return {}
        return {"Authorization": f"Bearer {self.token_path.read_text().strip()}"}

    def address(self) -> ClusterAddress:
        """This cluster as the operators' tools reach it (cluster/address.py)."""
        return ClusterAddress(
            self.dashboard_url, self.token_path, None, "the local cluster", self.gcs_port
        )

    def job_client(self) -> Any:
        """A ``JobSubmissionClient`` for this cluster, sending its token."""
        return self.address().job_client()

    # -- lifecycle -----------------------------------------------------------------------------
    def ensure_token(self) -> Path:
        """The Ray auth token and the Serve API key, each made once, readable by the owner. A
        key chosen in ONPREM_API_KEY becomes the file's, so that the cluster's processes and
        ``python -m cluster env`` give clients the same key (a key left in the shell by
        another cluster's ``cluster env`` would otherwise answer 401 here)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        for path in (self.token_path, self.api_key_path):
            if not path.is_file():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
        chosen = os.environ.get("ONPREM_API_KEY")
        if chosen and chosen != self.api_key_path.read_text().strip():
            fd = os.open(self.api_key_path, os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(chosen)
        return self.token_path

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster (found by its GCS port), with their children."""
        port = str(self.gcs_port)
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info.get("cmdline") or []
            if any(
                arg == f"--gcs_server_port={port}"
                or (
                    arg.startswith(("--gcs-address=", "--address=", "--gcs_address="))
                    and arg.endswith(f":{port}")
                )
                for arg in cmd
            ):
                found[proc.pid] = proc
        for proc in list(found.values()):
            try:
                for child in proc.children(recursive=True):
                    found.setdefault(child.pid, child)
            except psutil.Error:
                pass
        return list(found.values())

    def gcs_running(self) -> bool:
        return any(
            f"--gcs_server_port={self.gcs_port}" in (p.info.get("cmdline") or [])
            for p in psutil.process_iter(["cmdline"])
        )

    def is_up(self) -> bool:
        return self.gcs_running() and _http_ok(f"{self.dashboard_url}/api/version", self.token_path)

    def check_ports(self) -> None:
        taken = [(label, port) for label, port in self.ports().items() if _port_taken(port)]
        if not taken:
            return
        lines = []
        for label, port in taken:
            owner = _port_owner(port)
            lines.append(
                f"port {port} ({label}) is already in use{f' by {owner}' if owner else ''}"
            )
        raise ClusterError(
            "cannot start the local cluster: " + "; ".join(lines) + ". Fix: stop that process "
            "(if it is another Ray cluster: `ray stop`, or `python -m cluster down` with its "
            "ports), or move this cluster with ONPREM_GCS_PORT, ONPREM_DASHBOARD_PORT, "
            "ONPREM_CLIENT_PORT, ONPREM_AGENT_PORT and then use the printed --address"
        )

    def up(self, timeout_s: float = 90.0) -> dict[str, Any]:
        """Start the head unless it already runs. Returns the cluster file's contents."""
        secrets = startup_secret_problems(os.environ)  # before anything starts
        if secrets:
            raise ClusterError("refusing to start: " + "; ".join(secrets))
        if self.is_up():
            return self.info() | {"already_up": True}
        if self.gcs_running():  # a GCS without a dashboard: half up, e.g. killed mid-start
            self.down()
            _wait_ports_free(list(self.ports().values()))
        self.check_ports()
        self.ensure_token()
        ray = Path(sys.executable).parent / "ray"
        cmd = [
            str(ray),
            "start",
            "--head",
            f"--port={self.gcs_port}",
            f"--temp-dir={self.temp_dir}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={self.client_port}",
            f"--dashboard-agent-listen-port={self.agent_port}",
            "--disable-usage-stats",
            f"--num-cpus={self.num_cpus}",
            f"--num-gpus={self.num_gpus}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            "--labels="
            + json.dumps({"onprem/node": "laptop", "onprem/accelerator": self.accelerator_type}),
        ]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=self.node_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise ClusterError(f"`ray start` failed (exit {proc.returncode}):\n{tail}")
        while not _http_ok(f"{self.dashboard_url}/api/version", self.token_path):
            if time.monotonic() - t0 > timeout_s:
                raise ClusterError(
                    f"the Ray head started but its dashboard at {self.dashboard_url} did not "
                    f"answer within {timeout_s:.0f} s. Fix: look at "
                    f"{self.temp_dir}/session_latest/logs/"
                    "dashboard.log, then `python -m cluster down` and up again"
                )
            time.sleep(0.5)
        info = {
            **asdict(self),
            "root": str(self.root),
            "dashboard_url": self.dashboard_url,
            "started_at": time.time(),
            "start_seconds": round(time.monotonic() - t0, 1),
        }
        self.state_file.write_text(json.dumps(info, indent=2))
        return info | {"already_up": False}

    def info(self) -> dict[str, Any]:
        if self.state_file.is_file():
            return json.loads(self.state_file.read_text())
        return {"dashboard_url": self.dashboard_url, "gcs_port": self.gcs_port}

    def down(self, grace_s: float = 10.0) -> int:
        """Stop every process of this cluster; returns how many were stopped."""
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        self.state_file.unlink(missing_ok=True)
        _forget_current_cluster(self.gcs_port, self.temp_dir)
        return len(procs)


def _http_ok(url: str, token_path: Path | None = None) -> bool:
    import urllib.request

    headers = {}
    if token_path is not None and token_path.is_file():
        headers["Authorization"] = f"Bearer {token_path.read_text().strip()}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=2
        ) as resp:
            return resp.status == 200
    except Exception:
        return False


def _port_taken(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As servers do: connections in TIME_WAIT do not make a port "taken".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return True
    return False


def _wait_ports_free(ports: list[int], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(_port_taken(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.5)


def _port_owner(port: int) -> str | None:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            listening = conn.laddr and conn.status == psutil.CONN_LISTEN
            if listening and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3])[:80]})"
    except psutil.Error:
        return None
    return None


def _forget_current_cluster(gcs_port: int, temp_dir: Path) -> None:
    """Remove Ray's "current cluster" pointers that name this cluster, so a later
    ``ray.init()`` does not try to join a cluster that is gone."""
    for pointer in (temp_dir / "ray_current_cluster", Path("/tmp/ray/ray_current_cluster")):
        try:
            if pointer.read_text().strip().endswith(f":{gcs_port}"):
                pointer.unlink()
        except OSError:
            pass
