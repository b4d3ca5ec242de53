"""The Serve pods' ledger role on a real Postgres: a replica records its hours through it, and
it can change or read nothing else. Postgres as in test_ledger_postgres.py (skipped without
it); no Ray."""

import datetime as dt

import pytest
import sqlalchemy as sa

from cluster.ledger import Allocation, Ledger
from cluster.ledger_roles import ROLE, create_serve_role, statements
from tests.cluster.test_ledger_postgres import postgres_url  # noqa: F401 (the fixture)

PASSWORD = "p" * 40


def _as_role(url: str) -> str:
    return url.replace("ledger@", f"{ROLE}:{PASSWORD}@", 1)


@pytest.fixture(scope="module")
def urls(postgres_url):  # noqa: F811
    owner = Ledger(postgres_url)
    t0 = dt.datetime(2026, 1, 1)
    wid = owner.start("finetune", "ft", started_at=t0)
    owner.finish(wid, "SUCCEEDED", [Allocation("H100", gpus=8)], ended_at=t0 + dt.timedelta(1))
    create_serve_role(postgres_url, PASSWORD)
    create_serve_role(postgres_url, PASSWORD)  # idempotent: run it again after an upgrade
    return postgres_url, _as_role(postgres_url)


def test_a_serve_replica_records_its_hours_through_the_role(urls):
    from serve.usage import ReplicaUsage

    owner_url, serve_url = urls
    usage = ReplicaUsage("llm/m/r1", cpus=1, gpus=1, interval_s=3600, ledger=Ledger(serve_url))
    assert usage.workload is not None, "the role could not open its workload"
    usage.flush()
    usage.close()
    rows = [w for w in Ledger(owner_url).workloads(kind="serve") if w["name"] == "llm/m/r1"]
    assert [r["status"] for r in rows] == ["SUCCEEDED"]
    charged = [u for u in Ledger(owner_url).usage() if u["kind"] == "serve"]
    assert charged and all(u["workload_id"] == rows[0]["id"] for u in charged)


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM workloads",
        "DELETE FROM allocations",
        "TRUNCATE workloads",
        "UPDATE workloads SET name = 'x'",
        "UPDATE allocations SET gpu_hours = 0",
        "SELECT name FROM workloads",
        "SELECT gpu_hours FROM allocations",
        "DROP TABLE allocations",
        "ALTER TABLE workloads DISABLE ROW LEVEL SECURITY",
        "INSERT INTO workloads (kind, name, status, source, started_at, meta) "
        "VALUES ('cost', '![x](/etc/passwd)', 'SUCCEEDED', 'self', now(), '{}')",
        "INSERT INTO allocations (workload_id, accelerator_type, gpus, cpus, nodes, started_at,"
        " ended_at, hours, gpu_hours, cpu_hours, node_hours) SELECT 1, 'H100', 8, 0, 1, now(),"
        " now(), 1000, 8000, 0, 1000",
    ],
)
def test_the_role_cannot_touch_other_records(urls, sql):
    _, serve_url = urls
    engine = sa.create_engine(serve_url)
    with pytest.raises(sa.exc.ProgrammingError), engine.begin() as conn:
        conn.exec_driver_sql(sql)


def test_the_role_sees_and_closes_only_its_running_serve_workloads(urls):
    owner_url, serve_url = urls
    engine = sa.create_engine(serve_url)
    Ledger(serve_url).start("serve", "llm/m/r2")  # one running, besides the closed r1
    with engine.begin() as conn:
        visible = conn.exec_driver_sql("SELECT kind, status FROM workloads").all()
        closed = conn.exec_driver_sql("UPDATE workloads SET status = 'FAILED'").rowcount
    assert {kind for kind, _ in visible} == {"serve"}
    assert closed == sum(status == "RUNNING" for _, status in visible) >= 1
    assert [w["status"] for w in Ledger(owner_url).workloads(kind="finetune")] == ["SUCCEEDED"]


def test_the_role_is_an_identifier():
    assert any("ROW LEVEL SECURITY" in s for s in statements("ledger_serve"))
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        statements("x; DROP TABLE workloads")
