"""The usage ledger: which workload held which resources, when, on which accelerator type.

Every job records itself (on success and on failure); the Serve app records replica-hours while
it runs; :meth:`Ledger.import_ray_jobs` adds jobs that were run by hand from Ray's job list. The
cost report reads it back. It is SQLite by default (``<root>/.cluster/ledger.db``) on one node;
when several nodes write, point ``ONPREM_LEDGER_URL`` at Postgres
(``postgresql+psycopg://USER:PASSWORD@HOST:5432/ledger``). SQLite's locking does not hold on
network filesystems, so a SQLite ledger on NFS/CIFS/Ceph/... or on a multi-node cluster
(``ONPREM_MULTI_NODE=1``, set by the on-prem setup and the k8s manifests) is refused unless
``ONPREM_LEDGER_ALLOW_SQLITE=1`` says one writer is guaranteed. Each record is written in one
transaction.

Hours are wall-clock hours times the amount held: ``gpu_hours = gpus * hours``,
``node_hours = nodes * hours`` where ``nodes`` is the share of nodes the workload held (by
GPUs on GPU nodes, by CPUs otherwise: two jobs each holding half a node add up to one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cluster import paths

KINDS = ("pull", "finetune", "tune", "evaluate", "serve", "bench", "cost", "other")
# `python -m jobs.<module>` → workload kind: for jobs imported from Ray's job list, and the kind
# the demo submits each job as. A sweep's trials are charged as fine-tunes; "tune" is its driver.
ENTRYPOINT_KINDS = {
    "pull_model": "pull",
    "finetune": "finetune",
    "preference": "finetune",
    "tune": "tune",
    "evaluate": "evaluate",
    "bench_serve": "bench",
    "cost_report": "cost",
}

_meta = sa.MetaData()
workloads = sa.Table(
    "workloads",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("submission_id", sa.String(200), unique=True, nullable=True),
    sa.Column("ray_job_id", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # self | ray-import
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("ended_at", sa.DateTime, nullable=True),
    sa.Column("meta", sa.Text, nullable=False, default="{}"),
)
allocations = sa.Table(
    "allocations",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workload_id", sa.ForeignKey("workloads.id"), nullable=False, index=True),
    sa.Column("accelerator_type", sa.String(64), nullable=False),
    sa.Column("gpus", sa.Float, nullable=False),
    sa.Column("cpus", sa.Float, nullable=False),
    sa.Column("nodes", sa.Float, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("ended_at", sa.DateTime, nullable=False),
    sa.Column("hours", sa.Float, nullable=False),
    sa.Column("gpu_hours", sa.Float, nullable=False),
    sa.Column("cpu_hours", sa.Float, nullable=False),
    sa.Column("node_hours", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Allocation:
    """Resources a workload held on one accelerator type."""

    accelerator_type: str
    gpus: float = 0.0
    cpus: float = 0.0
    nodes: float = 1.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# Filesystems on which SQLite's file locks are unreliable (several hosts share the file).
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "gpfs",
              "9p", "afs", "beegfs", "fuse.")  # fmt: skip
ALLOW_SQLITE_ENV = "ONPREM_LEDGER_ALLOW_SQLITE"
MULTI_NODE_ENV = "ONPREM_MULTI_NODE"


class LedgerConfigError(RuntimeError):
    """The ledger's location is unsafe; the message names the setting, its value and the fix."""


def fs_type(path: Path, mounts: str) -> tuple[str, str]:
    """(filesystem type, mount point) of ``path``: the longest mount point in ``mounts``
    (the text of /proc/mounts) that holds it. Pure."""
    best = ("unknown", "")
    target = str(path)
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[1]):
            best = (fields[2], point)
    return best


def sqlite_problem(db: Path, mounts: str, env: dict[str, str]) -> str | None:
    """Why a SQLite ledger at ``db`` is unsafe here, or None. Pure."""
    if env.get(ALLOW_SQLITE_ENV) == "1":
        return None
    fix = (
        "Fix: run Postgres and set ONPREM_LEDGER_URL=postgresql+psycopg://USER:PASSWORD@HOST:"
        f"5432/ledger (docs/onprem.md, 'The usage ledger'), or set {ALLOW_SQLITE_ENV}=1 if "
        "only one process on one node ever writes the ledger"
    )
    kind, point = fs_type(db.parent, mounts)
    if kind in NETWORK_FS or kind.startswith("fuse."):
        return (
            f"ONPREM_LEDGER_URL is sqlite:///{db}, on a {kind} filesystem (mounted at {point}): "
            "SQLite's locks do not hold across hosts there and concurrent writers lose or "
            f"corrupt records. {fix}"
        )
    if env.get(MULTI_NODE_ENV) == "1":
        return (
            f"ONPREM_LEDGER_URL is sqlite:///{db} on a multi-node cluster ({MULTI_NODE_ENV}=1): "
            f"jobs on other nodes cannot share one SQLite file safely. {fix}"
        )
    return None


def _read_mounts() -> str:
    try:
        return Path("/proc/mounts").read_text()
    except OSError:
        return ""


class Ledger:
    """Read and write usage records: Postgres for a cluster, SQLite for one node."""

    def __init__(self, url: str | None = None):
        self.url = url or paths.ledger_url()
        if self.url.startswith("sqlite:///"):
            db = Path(self.url.removeprefix("sqlite:///")).resolve()
            db.parent.mkdir(parents=True, exist_ok=True)
            problem = sqlite_problem(db, _read_mounts(), dict(os.environ))
            if problem:
                raise LedgerConfigError(problem)
            self.engine = sa.create_engine(self.url, connect_args={"timeout": 30})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        _meta.create_all(self.engine)

    # -- writing -------------------------------------------------------------------------------
    def start(
        self,
        kind: str,
        name: str,
        *,
        submission_id: str | None = None,
        ray_job_id: str | None = None,
        meta: dict[str, Any] | None = None,
        started_at: dt.datetime | None = None,
        source: str = "self",
    ) -> int:
        """Open a workload record (status RUNNING) and return its id."""
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        with self.engine.begin() as conn:
            if submission_id:
                existing = conn.execute(
                    sa.select(workloads.c.id).where(workloads.c.submission_id == submission_id)
                ).scalar()
                if existing is not None:  # a retried driver: keep one record
                    return int(existing)
            result = conn.execute(
                workloads.insert().values(
                    kind=kind,
                    name=name,
                    submission_id=submission_id,
                    ray_job_id=ray_job_id,
                    status="RUNNING",
                    source=source,
                    started_at=started_at or utcnow(),
                    meta=json.dumps(meta or {}, default=str),
                )
            )
            return int(result.inserted_primary_key[0])

    def add_allocation(
        self,
        workload_id: int,
        alloc: Allocation,
        started_at: dt.datetime,
        ended_at: dt.datetime,
    ) -> None:
        """Record that ``workload_id`` held ``alloc`` from ``started_at`` to ``ended_at``."""
        with self.engine.begin() as conn:
            _insert_allocation(conn, workload_id, alloc, started_at, ended_at)

    def finish(
        self,
        workload_id: int,
        status: str,
        allocs: Iterable[Allocation] = (),
        *,
        ended_at: dt.datetime | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Close a workload: set status and end, and add what it held over its whole life,
        in one transaction (a crash leaves the record open, never closed without charges).
        Only an open record is closed: when its driver and an import of Ray's job list close
        it at the same time, one of them does and it is charged once."""
        ended_at = ended_at or utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(workloads.c.started_at, workloads.c.meta).where(
                    workloads.c.id == workload_id
                )
            ).one()
            merged = {**json.loads(row.meta or "{}"), **(meta or {})}
            closed = conn.execute(
                workloads.update()
                .where(workloads.c.id == workload_id, workloads.c.status == "RUNNING")
                .values(status=status, ended_at=ended_at, meta=json.dumps(merged, default=str))
            )
            if closed.rowcount == 0:  # closed already (by the driver, or by an import)
                return
            for alloc in allocs:
                _insert_allocation(conn, workload_id, alloc, row.started_at, ended_at)

    # -- reading -------------------------------------------------------------------------------
    def workloads(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(workloads).order_by(workloads.c.id)
        if kind:
            query = query.where(workloads.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def usage(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Allocation rows joined with their workload, clipped to ``[since, until)``."""
        query = sa.select(
            workloads.c.kind,
            workloads.c.name,
            workloads.c.status,
            workloads.c.submission_id,
            allocations,
        ).join(workloads, allocations.c.workload_id == workloads.c.id)
        if since:
            query = query.where(allocations.c.ended_at > since)
        if until:
            query = query.where(allocations.c.started_at < until)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(allocations.c.id))]
        for row in rows:
            start = max(row["started_at"], since) if since else row["started_at"]
            end = min(row["ended_at"], until) if until else row["ended_at"]
            hours = max((end - start).total_seconds(), 0.0) / 3600.0
            row.update(
                hours=hours,
                gpu_hours=row["gpus"] * hours,
                cpu_hours=row["cpus"] * hours,
                node_hours=row["nodes"] * hours,
            )
        return rows

    # -- importing -----------------------------------------------------------------------------
    def import_ray_jobs(self, jobs: Iterable[Any], default_accelerator: str = "CPU") -> int:
        """Add finished Ray jobs (``JobSubmissionClient.list_jobs()``) that are not recorded yet.

        A job that recorded itself is matched by submission id; if its driver died before it
        could close its own record, the record gets Ray's status and end time and is charged
        what the job declared it holds (``meta["holds"]``, see ``cluster.usage.track``).
        Returns how many workloads were added.
        """
        added = 0
        for job in jobs:
            sid = getattr(job, "submission_id", None)
            if not sid or job.start_time is None or job.end_time is None:
                continue  # still running, or not a submitted job
            status = str(getattr(job.status, "value", job.status))
            start = dt.datetime.fromtimestamp(job.start_time / 1000, dt.UTC).replace(tzinfo=None)
            end = dt.datetime.fromtimestamp(job.end_time / 1000, dt.UTC).replace(tzinfo=None)
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(workloads.c.id, workloads.c.status, workloads.c.meta).where(
                        workloads.c.submission_id == sid
                    )
                ).first()
            meta = dict(job.metadata or {})
            alloc = Allocation(
                accelerator_type=meta.get("accelerator_type", default_accelerator),
                # JobDetails does not carry the entrypoint's resources: our submit helper puts
                # them in the metadata; a job run by hand counts as its driver's one CPU.
                gpus=float(meta.get("gpus") or 0),
                cpus=float(meta.get("cpus") or 1),
                nodes=float(meta.get("nodes", 1)),
            )
            if row is not None:
                if row.status == "RUNNING":  # its driver died before closing it
                    holds = json.loads(row.meta or "{}").get("holds")
                    allocs = [Allocation(**h) for h in holds] if holds else [alloc]
                    self.finish(row.id, status, allocs, ended_at=end)
                continue
            kind = meta.get("kind") or kind_from_entrypoint(job.entrypoint or "")
            wid = self.start(
                kind if kind in KINDS else "other",
                meta.get("name") or sid,
                submission_id=sid,
                ray_job_id=getattr(job, "job_id", None),
                meta={"entrypoint": job.entrypoint, **meta},
                started_at=start,
                source="ray-import",
            )
            self.finish(wid, status, [alloc], ended_at=end)
            added += 1
        return added


def _insert_allocation(
    conn: sa.Connection,
    workload_id: int,
    alloc: Allocation,
    started_at: dt.datetime,
    ended_at: dt.datetime,
) -> None:
    hours = max((ended_at - started_at).total_seconds(), 0.0) / 3600.0
    conn.execute(
        allocations.insert().values(
            workload_id=workload_id,
            accelerator_type=alloc.accelerator_type,
            gpus=alloc.gpus,
            cpus=alloc.cpus,
            nodes=alloc.nodes,
            started_at=started_at,
            ended_at=ended_at,
            hours=hours,
            gpu_hours=alloc.gpus * hours,
            cpu_hours=alloc.cpus * hours,
            node_hours=alloc.nodes * hours,
        )
    )


def kind_from_entrypoint(entrypoint: str) -> str:
    match = re.search(r"-m\s+jobs\.(\w+)", entrypoint)
    return ENTRYPOINT_KINDS.get(match.group(1), "other") if match else "other"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
