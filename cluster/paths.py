"""Where the platform keeps its state: model store, runs, reports, ledger and cluster files.

Every path hangs off one root, ``ONPREM_ROOT``. ``python -m cluster up`` sets it for every
process of the cluster, so a job submitted with ``ray job submit --working-dir .`` (which runs
in a temporary copy of the project) still writes its outputs to the real project, and on a
multi-node cluster the root is the shared mount (NFS) that every node sees. Without it the
current directory is the root. Each location can also be moved on its own.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "ONPREM_ROOT"


def root() -> Path:
    """The platform root: ``$ONPREM_ROOT`` or the current directory."""
    return Path(os.environ.get(ROOT_ENV) or os.getcwd()).resolve()


def _under_root(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value).resolve() if value else root() / default


def store_dir() -> Path:
    """The model store (``$ONPREM_STORE`` or ``<root>/models``)."""
    return _under_root("ONPREM_STORE", "models")


def runs_dir() -> Path:
    """Fine-tune runs and their checkpoints (``$ONPREM_RUNS`` or ``<root>/runs``)."""
    return _under_root("ONPREM_RUNS", "runs")


def reports_dir() -> Path:
    """Reports written by jobs (``$ONPREM_REPORTS`` or ``<root>/reports``)."""
    return _under_root("ONPREM_REPORTS", "reports")


def state_dir() -> Path:
    """Cluster state: auth token, cluster file, default ledger (``<root>/.cluster``)."""
    return _under_root("ONPREM_STATE", ".cluster")


def ledger_url() -> str:
    """SQLAlchemy URL of the usage ledger: ``$ONPREM_LEDGER_URL`` or SQLite in the state dir."""
    return os.environ.get("ONPREM_LEDGER_URL") or f"sqlite:///{state_dir() / 'ledger.db'}"


def resolve(path: str | Path, base: Path | None = None) -> Path:
    """An absolute path: ``path`` as given if absolute, else under ``base`` (default: root)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base or root()) / p
