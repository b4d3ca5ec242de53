"""The ledger on a real Postgres, written by 4 Ray workers at once: every record lands.

Postgres comes from the Debian ``postgresql`` package (initdb/pg_ctl in a temp dir, on a free
loopback port, as the ``postgres`` user when the tests run as root); without it the test is
skipped with the reason, or fails on CI (``CI=true``).

    pytest tests/cluster/test_ledger_postgres.py -m integration -s
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, require

WRITERS, RECORDS = 4, 50


def _pg_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    return str(versions[-1]) if versions else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    require(bool(initdb and pg_ctl), "Postgres is not installed (apt-get install -y postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            require(False, "running as root and there is no 'postgres' user to run Postgres as")
        as_user = ["runuser", "-u", "postgres", "--"]
    work = Path(tempfile.mkdtemp(prefix="onprem-pg-"))
    if as_user:
        os.chown(work, user.pw_uid, user.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = work / "data"
    run = dict(capture_output=True, text=True, timeout=120)
    init = subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "ledger"], **run)
    if init.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        require(False, f"initdb failed: {init.stderr.strip()[-300:]}")
    opts = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c max_connections=50"
    start = subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(work / "log"), "-w", "start"],
        **run,
    )
    if start.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        require(False, f"pg_ctl start failed: {start.stderr.strip()[-300:]}")
    try:
        yield f"postgresql+psycopg://ledger@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], **run)
        shutil.rmtree(work, ignore_errors=True)


def _write(url: str, writer: int, n: int) -> list[int]:
    """One job per record, as drivers do: start, then finish with its charge."""
    import datetime as dt

    from cluster.ledger import Allocation, Ledger

    ledger = Ledger(url)
    ids = []
    t0 = dt.datetime(2026, 1, 1)
    for i in range(n):
        wid = ledger.start("other", f"w{writer}-{i}", submission_id=f"w{writer}-{i}", started_at=t0)
        ledger.finish(
            wid, "SUCCEEDED", [Allocation("CPU", cpus=1.0)], ended_at=t0 + dt.timedelta(hours=1)
        )
        ids.append(wid)
    return ids


@pytest.mark.integration
def test_four_ray_workers_write_the_postgres_ledger_at_once_and_lose_nothing(
    ray_cluster, postgres_url
):
    import ray

    from cluster.ledger import Ledger

    Ledger(postgres_url)  # create the tables once, before the writers race
    ray.init(
        address=f"127.0.0.1:{ray_cluster.gcs_port}",
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
        log_to_driver=False,
    )
    try:
        write = ray.remote(num_cpus=0)(_write)
        t0 = time.monotonic()
        ids = ray.get([write.remote(postgres_url, w, RECORDS) for w in range(WRITERS)])
        seconds = time.monotonic() - t0
    finally:
        ray.shutdown()
    ledger = Ledger(postgres_url)
    rows = ledger.workloads()
    usage = ledger.usage()
    written, expected = len(rows), WRITERS * RECORDS
    print(
        f"\nledger on Postgres: {WRITERS} Ray workers x {RECORDS} records in {seconds:.1f} s: "
        f"{written} written, {expected - written} lost, {len(usage)} charges"
    )
    assert sorted(i for batch in ids for i in batch) == sorted(r["id"] for r in rows)
    assert written == expected and len(usage) == expected
    assert all(r["status"] == "SUCCEEDED" for r in rows)
    assert sum(u["cpu_hours"] for u in usage) == pytest.approx(expected)
