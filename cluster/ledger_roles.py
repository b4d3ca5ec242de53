"""The ledger's Postgres role for Serve pods: it records replica-hours and nothing else.

Serve replicas open a ``serve`` workload, add allocations to it and close it
(``serve/usage.py``). The role ``ledger_serve`` may do exactly that: insert running ``serve``
workloads and allocations of running ``serve`` workloads, close those (status, end, meta), and
see the ids, status, start and meta of ``serve`` rows only; it cannot read any workload's name
or any allocation's hours, change or delete any other record, truncate, or change the schema.
Row-level security holds the rows; column grants hold the columns. The jobs keep the owner's
credentials (they read the ledger for the cost report).

Run once, with the owner's ``ONPREM_LEDGER_URL``, after Postgres is up (it creates the tables
if no job has yet); the password is read from ``ONPREM_LEDGER_SERVE_PASSWORD`` or asked for::

    python -m cluster.ledger_roles            # then: the Serve pods' ONPREM_LEDGER_URL is
                                              # postgresql+psycopg://ledger_serve:PASSWORD@...
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import sqlalchemy as sa

from cluster import paths
from cluster.ledger import Ledger

ROLE = "ledger_serve"
PASSWORD_ENV = "ONPREM_LEDGER_SERVE_PASSWORD"

# What the role may touch. The SELECT columns are what Ledger.start/finish read back
# (INSERT ... RETURNING id, the row's start and meta when closing it).
GRANTS = """
GRANT USAGE ON SCHEMA public TO {role};
REVOKE ALL ON workloads, allocations FROM {role};
GRANT SELECT (id, kind, status, started_at, meta) ON workloads TO {role};
GRANT INSERT ON workloads TO {role};
GRANT UPDATE (status, ended_at, meta) ON workloads TO {role};
GRANT SELECT (id, workload_id) ON allocations TO {role};
GRANT INSERT ON allocations TO {role};
GRANT USAGE ON SEQUENCE workloads_id_seq, allocations_id_seq TO {role};
ALTER TABLE workloads ENABLE ROW LEVEL SECURITY;
ALTER TABLE allocations ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS serve_read ON workloads;
CREATE POLICY serve_read ON workloads FOR SELECT TO {role}
    USING (kind = 'serve' AND source = 'self');
DROP POLICY IF EXISTS serve_open ON workloads;
CREATE POLICY serve_open ON workloads FOR INSERT TO {role}
    WITH CHECK (kind = 'serve' AND source = 'self' AND status = 'RUNNING');
DROP POLICY IF EXISTS serve_close ON workloads;
CREATE POLICY serve_close ON workloads FOR UPDATE TO {role}
    USING (kind = 'serve' AND source = 'self' AND status = 'RUNNING')
    WITH CHECK (kind = 'serve' AND source = 'self');
DROP POLICY IF EXISTS serve_allocations ON allocations;
CREATE POLICY serve_allocations ON allocations TO {role}
    USING (workload_id IN (SELECT id FROM workloads WHERE status = 'RUNNING'))
    WITH CHECK (workload_id IN (SELECT id FROM workloads WHERE status = 'RUNNING'));
"""


def statements(role: str = ROLE) -> list[str]:
    """The GRANTs and policies, one statement each (the role is an identifier, never data)."""
    if not role.isidentifier():
        raise ValueError(f"role {role!r} is not a plain SQL identifier")
    return [s.strip() for s in GRANTS.format(role=role).split(";") if s.strip()]


def create_serve_role(owner_url: str, password: str, role: str = ROLE) -> None:
    """Create (or update) ``role`` with ``password`` and its grants, as the ledger's owner."""
    if not owner_url.startswith("postgresql"):
        raise ValueError(f"ONPREM_LEDGER_URL is {owner_url.split(':')[0]}: roles need Postgres")
    engine = Ledger(owner_url).engine  # creates the tables if no job has yet
    with engine.begin() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        verb = "ALTER" if exists.first() else "CREATE"
        quoted = conn.exec_driver_sql("SELECT quote_literal(%(p)s)", {"p": password}).scalar()
        conn.exec_driver_sql(f"{verb} ROLE {role} LOGIN PASSWORD {quoted}")
        for statement in statements(role):
            conn.exec_driver_sql(statement)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.ledger_roles", description=__doc__)
    parser.add_argument("--role", default=ROLE)
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV) or getpass.getpass(f"password for {args.role}: ")
    if len(password) < 32:
        print(f"error: the password of {args.role} needs 32+ characters", file=sys.stderr)
        return 2
    create_serve_role(paths.ledger_url(), password, args.role)
    print(f"role {args.role}: insert-only access to the ledger (cluster/ledger_roles.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
