"""One fine-tune from start to end, as ``python -m jobs.finetune`` runs it and as each trial of
a sweep (``python -m jobs.tune``) runs it: check the inputs, wait for the workers' resources,
charge the run in the usage ledger, train with Ray Train, write the outputs, register.

    summary = finetune(cfg)                       # the fine-tune's result.json
    summary = finetune(cfg, callbacks=[TuneReportCallback()])   # inside a Tune trial
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from cluster.usage import track
from jobs.train.config import FinetuneConfig
from jobs.train.ds_config import deepspeed_config
from jobs.train.run import (
    Preflight,
    allocations,
    cluster_capacity,
    describe_stats,
    make_trainer,
    preflight,
    register,
    requested,
    save_run_inputs,
    write_outputs,
)

log = logging.getLogger("jobs.finetune")


class TrainingFailed(RuntimeError):
    """Training started and did not finish (a worker failed past checkpoint.max_failures)."""


def check(cfg: FinetuneConfig) -> Preflight:
    """Everything that can be wrong before any work: model, data, run folder, and whether the
    cluster can ever hold the workers (PreflightError otherwise)."""
    pre = preflight(cfg)
    log.info("data checked\n%s", describe_stats(pre.stats))
    if pre.resuming:
        log.info("run %s has checkpoints: resuming from the latest", cfg.run_name)
    return pre


def finetune(
    cfg: FinetuneConfig,
    pre: Preflight | None = None,
    *,
    callbacks: Sequence[Any] = (),
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` (checked with :func:`check` unless ``pre`` is given) and return its
    summary (``runs/<run_name>/result.json``); ``callbacks`` are more Ray Train callbacks.
    Raises PreflightError before any work, TrainingFailed after it started."""
    pre = pre or check(cfg)
    waiting = cluster_capacity(cfg)
    if waiting:
        log.warning(waiting)
    ds_config = deepspeed_config(cfg)
    save_run_inputs(cfg, pre, ds_config)
    log.info(
        "run %s: %d workers (%s), ZeRO-%d, %s, LoRA %s -> %s",
        cfg.run_name,
        cfg.scaling.num_workers,
        "GPU" if cfg.scaling.use_gpu else "CPU",
        cfg.deepspeed.zero_stage,
        "bf16" if cfg.bf16 else "fp32",
        f"r={cfg.lora.r}" if cfg.lora.enabled else "off (full)",
        pre.run_dir,
    )
    t0 = time.monotonic()
    # Charged the worker group from the start: a run that fails or is stopped half-way held it.
    holds = requested(cfg)
    try:
        with track(
            "finetune", cfg.run_name, meta={"model": cfg.model, **(meta or {})}, holds=holds
        ) as run:
            result = make_trainer(cfg, pre, ds_config, callbacks=callbacks).fit()
            if result.error:
                raise result.error
            summary = write_outputs(cfg, pre, result, time.monotonic() - t0)
            run.allocations = allocations(cfg, summary.get("placement") or [])
            run.meta.update(steps=summary.get("steps"), tokens_seen=summary.get("tokens_seen"))
    except Exception as exc:
        raise TrainingFailed(str(exc)) from exc
    if cfg.register_model:
        log.info("registered in the model store as %s", register(cfg, pre))
    log.info(
        "done in %.0f s: train loss %.4f -> %.4f, eval loss %s -> %s, %.0f tokens/s, outputs in %s",
        summary["wall_s"],
        summary["train_loss_first"],
        summary["train_loss_last"],
        _f(summary.get("eval_loss_first")),
        _f(summary.get("eval_loss")),
        summary["tokens_per_s"],
        pre.run_dir,
    )
    return summary


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
