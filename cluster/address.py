"""Which cluster an operator's command talks to: the dashboard URL (dashboard, Jobs API, Serve's
REST API) and the token that opens it. The local cluster by default; a fleet's head or a
KubeRay head Service from the environment or a flag, the way Ray's own CLI finds it.

    python -m serve.status --address http://10.10.0.10:8265     # token: RAY_AUTH_TOKEN_PATH
    export RAY_API_SERVER_ADDRESS=http://10.10.0.10:8265 RAY_AUTH_TOKEN_PATH=~/.ray/onprem_token
    python -m serve.scale --model smollm2-support --replicas 2  # the same cluster, from the env

Order, first found wins: ``--address``; ``RAY_API_SERVER_ADDRESS``; ``RAY_ADDRESS`` when it is
an ``http(s)://`` URL; else the local cluster of ``python -m cluster up``. The token of a
named address: the ``RAY_AUTH_TOKEN`` value, else the file ``RAY_AUTH_TOKEN_PATH`` names; the
local cluster always uses its own ``<root>/.cluster/auth_token``, which is never sent elsewhere.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cluster.local import LocalCluster

ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
ADDRESS_HELP = (
    "the cluster's dashboard URL, e.g. http://10.10.0.10:8265 (default: $RAY_API_SERVER_ADDRESS, "
    "an http(s) $RAY_ADDRESS, else the local cluster); the token comes from $RAY_AUTH_TOKEN_PATH"
)


class Dashboard(Protocol):
    """What talking to a cluster's dashboard needs; a LocalCluster and a ClusterAddress have it."""

    @property
    def dashboard_url(self) -> str: ...

    def auth_headers(self) -> dict[str, str]: ...

    def client_env(self) -> dict[str, str]: ...

    def job_client(self) -> Any: ...


class AddressError(ValueError):
    """An address that is not a dashboard URL, or a cluster that does not answer there."""


@dataclass(frozen=True)
class ClusterAddress:
    """A cluster's dashboard URL and its token; what every operator's tool needs to reach it."""

    dashboard_url: str
    token_path: Path | None = None
    token_value: str | None = None
    source: str = "the local cluster"  # where the address came from, for messages
    gcs_port: int | None = None  # known for the local cluster only

    def token(self) -> str | None:
        if self.token_value:
            return self.token_value.strip()
        if self.token_path is not None and self.token_path.is_file():
            return self.token_path.read_text().strip()
        return None

    def auth_headers(self) -> dict[str, str]:
        token = self.token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def client_env(self) -> dict[str, str]:
        """What a ``ray`` CLI subprocess needs to reach this cluster. Ray's clients prefer
        ``RAY_API_SERVER_ADDRESS`` to any address they are given, so it is always set here."""
        env = {"RAY_AUTH_MODE": "token", "RAY_API_SERVER_ADDRESS": self.dashboard_url}
        if self.token_path is not None:
            env[TOKEN_PATH_ENV] = str(self.token_path)
        if self.token_value:
            env[TOKEN_ENV] = self.token_value
        return env

    def job_client(self) -> Any:
        """A ``JobSubmissionClient`` for this cluster, sending its token. Ray's client takes
        ``RAY_API_SERVER_ADDRESS`` over the address it is given (it reads it once, when built),
        so the variable names this cluster while the client is built."""
        from ray.job_submission import JobSubmissionClient

        saved = os.environ.get("RAY_API_SERVER_ADDRESS")
        os.environ["RAY_API_SERVER_ADDRESS"] = self.dashboard_url
        try:
            return JobSubmissionClient(self.dashboard_url, headers=self.auth_headers())
        finally:
            if saved is None:
                os.environ.pop("RAY_API_SERVER_ADDRESS")
            else:
                os.environ["RAY_API_SERVER_ADDRESS"] = saved

    def get(self, path: str, timeout: float = 30.0) -> Any:
        """GET a dashboard path with the token; the JSON answer."""
        req = urllib.request.Request(self.dashboard_url + path, headers=self.auth_headers())
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def problem(self, timeout: float = 5.0) -> str | None:
        """None when the dashboard answers with this token, else what went wrong and the fix."""
        try:
            self.get("/api/version", timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                where = self.token_path or f"${TOKEN_ENV}" if self.token() else "none was found"
                return (
                    f"the dashboard at {self.dashboard_url} ({self.source}) refused the token "
                    f"(HTTP {exc.code}; token: {where}). Fix: export {TOKEN_PATH_ENV}= the "
                    "cluster's token file (docs/onprem.md, 'The token')"
                )
            return f"the dashboard at {self.dashboard_url} ({self.source}) answered {exc.code}"
        except (OSError, ValueError) as exc:
            return (
                f"no Ray dashboard answers at {self.dashboard_url} ({self.source}): {exc}. Fix: "
                "start the cluster (python -m cluster up, or ray up on a fleet) or pass the "
                "right --address"
            )
        return None

    def is_up(self) -> bool:
        return self.problem() is None


def dashboard_url(value: str, what: str) -> str:
    """``value`` as a dashboard URL without a trailing slash; AddressError naming ``what``."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressError(
            f"{what}={value!r} is not a dashboard URL. Fix: give the head's dashboard address, "
            "e.g. http://10.10.0.10:8265 (a GCS address such as 10.10.0.10:6379 or a ray:// "
            "client address does not serve the Jobs and Serve APIs)"
        )
    return value.strip().rstrip("/")


def resolve(
    flag: str | None = None,
    env: Mapping[str, str] | None = None,
    local: LocalCluster | None = None,
) -> ClusterAddress:
    """The cluster an operator's command means (module docstring: the order). Pure but for
    building the default LocalCluster from the environment."""
    env = os.environ if env is None else env
    if flag:
        url, source = dashboard_url(flag, "--address"), "--address"
    elif env.get("RAY_API_SERVER_ADDRESS"):
        value = env["RAY_API_SERVER_ADDRESS"]
        url, source = dashboard_url(value, "RAY_API_SERVER_ADDRESS"), "$RAY_API_SERVER_ADDRESS"
    elif env.get("RAY_ADDRESS", "").startswith(("http://", "https://")):
        url, source = dashboard_url(env["RAY_ADDRESS"], "RAY_ADDRESS"), "$RAY_ADDRESS"
    else:  # the local cluster, with its own token file
        from cluster.local import LocalCluster

        return (local or LocalCluster.from_env()).address()
    token_path = Path(env[TOKEN_PATH_ENV]).expanduser() if env.get(TOKEN_PATH_ENV) else None
    return ClusterAddress(url, token_path, env.get(TOKEN_ENV) or None, source)
