"""Replica-hours in the usage ledger: each replica opens a ``serve`` workload when it starts
and adds what it holds (per accelerator type) every ``interval_s`` until it stops."""

from __future__ import annotations

import logging
import threading

from cluster.ledger import Allocation, Ledger, utcnow
from cluster.usage import node_accelerator_type, node_capacity, node_share

log = logging.getLogger(__name__)


class ReplicaUsage:
    def __init__(
        self,
        name: str,
        cpus: float,
        gpus: float,
        interval_s: float = 30.0,
        ledger: Ledger | None = None,
    ):
        self.alloc = Allocation(
            node_accelerator_type(),
            gpus=gpus,
            cpus=cpus,
            nodes=node_share(cpus, gpus, node_capacity()),
        )
        self.interval_s = interval_s
        self._stop = threading.Event()
        try:
            self.ledger = ledger or Ledger()
            self.workload = self.ledger.start("serve", name, meta={"cpus": cpus, "gpus": gpus})
        except Exception as exc:  # bookkeeping never takes a replica down
            log.warning("usage ledger unavailable: %s", exc)
            self.ledger, self.workload = None, None
            return
        self.last = utcnow()
        self.thread = threading.Thread(target=self._run, name="usage", daemon=True)
        self.thread.start()

    def flush(self) -> None:
        if self.ledger is None or self.workload is None:
            return
        now = utcnow()
        try:
            self.ledger.add_allocation(self.workload, self.alloc, self.last, now)
            self.last = now
        except Exception as exc:
            log.warning("could not record replica usage: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        if self.ledger is None or self.workload is None:
            return
        self._stop.set()
        self.flush()
        try:
            self.ledger.finish(self.workload, "SUCCEEDED")
        except Exception as exc:
            log.warning("could not close replica usage: %s", exc)
        self.workload = None
