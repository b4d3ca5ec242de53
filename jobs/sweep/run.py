"""Driver of a sweep: Ray Tune runs the trials (jobs/sweep/trial.py) a few at a time, resumes a
sweep whose driver was killed (``Tuner.restore``: finished trials are kept), and the results
become a table, a trade-off chart and the best trial's runnable fine-tune config
(jobs/sweep/report.py)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from cluster import paths
from jobs.sweep.config import TuneConfig, trial_config

log = logging.getLogger("jobs.tune")


def sweep_dir(cfg: TuneConfig) -> Path:
    """Tune's own state of the sweep (trials, their results): what a restore reads."""
    return paths.runs_dir() / "tune" / cfg.name


def concurrency(cfg: TuneConfig, total: dict[str, float]) -> int:
    """Trials at once: as many worker groups as the cluster's CPUs (GPUs) hold, at least 1."""
    if cfg.max_concurrent_trials:
        return cfg.max_concurrent_trials
    sc = trial_config(cfg, {}, "check").scaling
    need = {"CPU": sc.num_workers * sc.cpus_per_worker}
    if sc.use_gpu:
        need["GPU"] = sc.num_workers * sc.gpus_per_worker
    return max(1, min(math.floor(total.get(k, 0) / v) for k, v in need.items() if v))


def tune_config(cfg: TuneConfig, n: int) -> Any:
    """Tune's settings: the designed points first, ``n`` trials at a time, ASHA if asked."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    # The limit goes to the generator itself: Tune ignores max_concurrent_trials when it is
    # given a search algorithm of this kind (it then started all 12 trials at once).
    search = tune.search.BasicVariantGenerator(
        points_to_evaluate=[dict(p) for p in cfg.points] or None,
        random_state=cfg.seed,
        max_concurrent=n,
    )
    stop = cfg.early_stop
    asha = stop and ASHAScheduler(
        time_attr="step",
        metric=stop.metric,
        mode=stop.mode,
        grace_period=stop.at_step,
        # One rung, at at_step: max_t below the next rung, and a trial past it runs to its end.
        max_t=int(stop.at_step * stop.reduction_factor) - 1,
        reduction_factor=stop.reduction_factor,
        stop_last_trials=False,
    )
    return tune.TuneConfig(num_samples=cfg.num_samples, search_alg=search, scheduler=asha or None)


def tuner(cfg: TuneConfig, model_dir: str) -> Any:
    """A new Tuner for the sweep, or the interrupted one restored."""
    import ray
    from ray import tune

    from jobs.sweep.trial import run_trial

    if not ray.is_initialized():
        ray.init()
    # The trial function only coordinates: its fine-tune's workers and its scoring engine ask
    # for the CPUs/GPUs, so the trial itself holds a token share (Tune refuses none at all).
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial, cfg=cfg.model_dump(mode="json"), model_dir=model_dir, cwd=os.getcwd()
        ),
        {"CPU": 0.01},
    )
    if cfg.early_stop:
        # The fine-tune reports its selection loss only at evaluation steps; Tune's default
        # refuses any report without the scheduler's metric (ASHA skips such reports itself).
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    path = sweep_dir(cfg)
    if cfg.restore and tune.Tuner.can_restore(str(path)):
        log.info("sweep %s: restoring %s (finished trials are kept)", cfg.name, path)
        return tune.Tuner.restore(
            str(path), trainable, resume_unfinished=True, resume_errored=False
        )
    n = concurrency(cfg, ray.cluster_resources())
    log.info("sweep %s: %d trials, %d at a time -> %s", cfg.name, cfg.num_samples, n, path)
    return tune.Tuner(
        trainable,
        param_space={k: d.tune_domain() for k, d in cfg.space.items()},
        tune_config=tune_config(cfg, n),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=str(path.parent),
            failure_config=tune.FailureConfig(max_failures=0),  # a crashed trial stays failed
        ),
    )


def results(grid: Any) -> Any:
    """One row per trial (pandas): its parameters, status and last scores."""
    import pandas as pd

    rows = []
    for r in grid:
        row: dict[str, Any] = {"trial": Path(r.path).name if r.path else None}
        row.update({f"param:{k}": v for k, v in (r.config or {}).items()})
        metrics = r.metrics or {}
        row["status"] = "ERROR" if r.error else ("DONE" if "score" in metrics else "STOPPED")
        for key in (
            "score",
            "pass",
            "facts",
            "wrong_facts",
            "retention_drop",
            "leak_free_drop",
            "eval_loss",
            "train_loss_last",
            "steps",
            "train_wall_s",
            "run_name",
        ):
            row[key] = metrics.get(key)
        if r.error:
            row["error"] = str(r.error).splitlines()[0][:200]
        rows.append(row)
    return pd.DataFrame(rows)
