"""Rolling statistics of one replica (latency, time to first token, tokens/s, queue) and
their snapshot file, which ``python -m serve.status`` reads for every replica."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

WINDOW_S = 60.0


class RollingStats:
    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self.done: deque[tuple[float, float, float | None, int]] = deque()  # t, e2e, ttft, toks
        self.requests = 0
        self.errors = 0
        self.lock = threading.Lock()

    def record(self, e2e_s: float, ttft_s: float | None, tokens: int, ok: bool = True) -> None:
        with self.lock:
            self.requests += 1
            self.errors += not ok
            self.done.append((time.time(), e2e_s, ttft_s, tokens))
            self._trim()

    def _trim(self) -> None:
        cutoff = time.time() - self.window_s
        while self.done and self.done[0][0] < cutoff:
            self.done.popleft()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self._trim()
            rows = list(self.done)
        e2e = [r[1] for r in rows]
        ttft = [r[2] for r in rows if r[2] is not None]
        span = (rows[-1][0] - rows[0][0]) if len(rows) > 1 else self.window_s

        def pct(values: list[float], q: float) -> float | None:
            return float(np.percentile(values, q)) if values else None

        return {
            "requests_total": self.requests,
            "errors_total": self.errors,
            "window_s": self.window_s,
            "requests_in_window": len(rows),
            "e2e_p50_s": pct(e2e, 50),
            "e2e_p95_s": pct(e2e, 95),
            "ttft_p50_s": pct(ttft, 50),
            "ttft_p95_s": pct(ttft, 95),
            "tokens_per_s": sum(r[3] for r in rows) / max(span, 1.0),
        }


def snapshot_dir(app: str) -> Path:
    from cluster import paths

    return paths.state_dir() / "serve" / app


def write_snapshot(app: str, replica: str, data: dict[str, Any]) -> None:
    folder = snapshot_dir(app)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{replica}.tmp"
    tmp.write_text(json.dumps({**data, "replica": replica, "time": time.time()}))
    os.replace(tmp, folder / f"{replica}.json")


def read_snapshots(app: str) -> dict[str, dict[str, Any]]:
    out = {}
    folder = snapshot_dir(app)
    if folder.is_dir():
        for f in folder.glob("*.json"):
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            out[data.get("replica", f.stem)] = data
    return out
