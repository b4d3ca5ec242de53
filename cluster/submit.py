"""Run a job through the real ``ray job submit`` CLI against a cluster (the local one, or a
fleet's head: cluster/address.py), with the auth token, a readable submission id, the metadata
the usage ledger reads and the upload excludes that keep secrets on this machine.

    from cluster.submit import submit
    result = submit(cluster, ["python", "-m", "jobs.pull_model", "--config", "..."],
                    kind="pull")
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cluster.address import Dashboard

# Never uploaded with a job's working directory, whatever .gitignore says (Ray reads it only
# when RAY_RUNTIME_ENV_IGNORE_GITIGNORE is unset): the cluster's token and keys, env files,
# filled-in k8s Secrets, and the big local state.
UPLOAD_EXCLUDES = [
    ".cluster/",
    "secrets.env",
    ".env",
    "*.env",
    "k8s/secrets*.yaml",
    ".git/",
    ".venv/",
    "models/",
    "runs/",
]


def with_upload_excludes(runtime_env: dict | None) -> dict:
    """``runtime_env`` with :data:`UPLOAD_EXCLUDES` added to its ``excludes``."""
    env = dict(runtime_env or {})
    env["excludes"] = [*env.get("excludes", []), *UPLOAD_EXCLUDES]
    return env


@dataclass
class Submitted:
    submission_id: str
    returncode: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def submit_command(
    cluster: Dashboard,
    entrypoint: Sequence[str],
    *,
    submission_id: str,
    kind: str,
    working_dir: Path,
    entrypoint_num_cpus: float | None = None,
    metadata: dict[str, str] | None = None,
    runtime_env: dict | None = None,
    no_wait: bool = False,
) -> list[str]:
    """The exact ``ray job submit`` command line (printed by the demo, so users can copy it)."""
    ray = str(Path(sys.executable).parent / "ray")
    meta = {"kind": kind, "cpus": str(entrypoint_num_cpus or 0), **(metadata or {})}
    cmd = [
        ray,
        "job",
        "submit",
        "--address",
        cluster.dashboard_url,
        "--submission-id",
        submission_id,
        "--working-dir",
        str(working_dir),
        "--metadata-json",
        json.dumps(meta),
    ]
    if entrypoint_num_cpus:
        cmd += ["--entrypoint-num-cpus", str(entrypoint_num_cpus)]
    cmd += ["--runtime-env-json", json.dumps(with_upload_excludes(runtime_env))]
    if no_wait:
        cmd.append("--no-wait")
    return [*cmd, "--", *entrypoint]


def submit(
    cluster: Dashboard,
    entrypoint: Sequence[str],
    *,
    kind: str,
    working_dir: str | Path = ".",
    name: str | None = None,
    entrypoint_num_cpus: float | None = None,
    metadata: dict[str, str] | None = None,
    runtime_env: dict | None = None,
    stream: bool = False,
    timeout_s: float | None = None,
) -> Submitted:
    """Submit and wait; ``stream`` prints the job's log as it comes (the demo does)."""
    sid = f"{name or kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    cmd = submit_command(
        cluster,
        entrypoint,
        submission_id=sid,
        kind=kind,
        working_dir=Path(working_dir),
        entrypoint_num_cpus=entrypoint_num_cpus,
        metadata=metadata,
        runtime_env=runtime_env,
    )
    env = {**os.environ, **cluster.client_env()}
    t0 = time.monotonic()
    if not stream:
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise _timed_out(cluster, env, sid, timeout_s, _text(e.stdout) + _text(e.stderr)) from e
        return Submitted(sid, proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0)
    lines: list[str] = []
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        timer = threading.Timer(timeout_s, proc.kill) if timeout_s else None
        if timer:
            timer.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                sys.stdout.write(line)
                sys.stdout.flush()
            rc = proc.wait()
        finally:
            if timer:
                timer.cancel()
    if timeout_s and time.monotonic() - t0 >= timeout_s and rc < 0:
        raise _timed_out(cluster, env, sid, timeout_s, "".join(lines))
    return Submitted(sid, rc, "".join(lines), time.monotonic() - t0)


def _text(out: str | bytes | None) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")


def _timed_out(
    cluster: Dashboard, env: dict[str, str], sid: str, timeout_s: float | None, output: str
) -> TimeoutError:
    """Stop the job on the cluster (a client timeout alone leaves it running, holding its
    CPUs/GPUs) and say so, with the end of what it printed."""
    ray = str(Path(sys.executable).parent / "ray")
    stop = [ray, "job", "stop", "--address", cluster.dashboard_url, sid]
    stopped = subprocess.run(stop, env=env, capture_output=True, text=True, timeout=120)
    failed = f"could not be stopped ({stopped.stderr[-300:]})"
    how = "stopped" if stopped.returncode == 0 else failed
    return TimeoutError(
        f"job {sid} did not finish within {timeout_s:.0f} s and was {how}; "
        f"its output ended with:\n{output[-3000:]}"
    )
