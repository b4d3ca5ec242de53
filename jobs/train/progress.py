"""Progress of a training run as it goes: one line per report (step, loss, lr, tokens/s, ETA,
eval loss) in the job's log, and every report appended to ``metrics.jsonl``.

It is a Ray Train ``UserCallback``, so it runs on the Train controller, sees rank 0's metrics
after every ``ray.train.report`` and also sees worker failures and restarts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.train.v2.api.callback import UserCallback


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def format_progress(m: dict[str, Any], avg_step_s: float | None) -> str:
    step, total = m["step"], m["total_steps"]
    parts = [
        f"step {step}/{total}",
        f"loss {m['loss']:.4f}",
        f"lr {m['lr']:.2e}",
        f"{m['tokens_per_s']:.0f} tok/s",
        f"epoch {m['epoch']:.2f}",
    ]
    if m.get("grad_norm") is not None:
        parts.insert(3, f"grad {m['grad_norm']:.2f}")
    if avg_step_s is not None:
        parts.append(f"ETA {fmt_duration((total - step) * avg_step_s)}")
    if m.get("eval_loss") is not None:
        parts.append(f"eval_loss {m['eval_loss']:.4f}")
    return " | ".join(parts)


class Progress(UserCallback):
    def __init__(self, metrics_path: str):
        self.metrics_path = metrics_path
        self.last_step = 0
        self.restarts = 0
        self.avg_step_s: float | None = None

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
    ) -> None:
        m = dict(metrics[0])
        if m.get("kind") != "train":
            return
        restarts = int(m.get("restarts") or 0)
        if restarts > self.restarts or m["step"] <= self.last_step:
            print(
                f"[finetune] workers restarted (restart {restarts}): resumed from the "
                f"checkpoint at step {m['step'] - 1}; steps, optimizer and data position "
                "continue, they do not start over",
                flush=True,
            )
            self.restarts = restarts
        self.last_step = m["step"]
        dt = m.get("step_time_s") or 0.0
        self.avg_step_s = dt if self.avg_step_s is None else 0.8 * self.avg_step_s + 0.2 * dt
        print(f"[finetune] {format_progress(m, self.avg_step_s)}", flush=True)
        if checkpoint is not None:
            print(f"[finetune] checkpoint at step {m['step']}: {checkpoint.path}", flush=True)
        row = {k: v for k, v in m.items() if k not in ("summary", "kind")}
        row["time"] = time.time()
        if checkpoint is not None:
            row["checkpoint"] = checkpoint.path
        path = Path(self.metrics_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        for rank, exc in sorted(worker_exceptions.items()):
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            print(
                f"[finetune] worker rank {rank} failed: {type(exc).__name__}: {first}; "
                "Ray Train restarts the workers from the last checkpoint if failures are "
                "left",
                flush=True,
            )
