"""One trial of a sweep, run by Ray Tune as a function trainable: the fine-tune with the
trial's parameters (Ray Train's ``TorchTrainer``, its reports forwarded to Tune by
``TuneReportCallback``), charged in the usage ledger like any fine-tune, then scored on the
selection split (jobs/sweep/score.py)."""

from __future__ import annotations

import json
from typing import Any

from jobs.sweep.config import TuneConfig, trial_config


def run_trial(params: dict[str, Any], *, cfg: dict[str, Any], model_dir: str, cwd: str) -> None:
    """``params`` are the trial's draws; ``cfg`` the sweep's config (as JSON), ``model_dir``
    the base model resolved once by the driver, ``cwd`` the job's working directory."""
    import os

    from ray import tune

    # Tune starts a trial in a folder of its own; the configs name files of the project.
    os.chdir(cwd)
    from ray.tune.integration.ray_train import TuneReportCallback

    from cluster.logs import setup_logging
    from jobs.sweep.score import score_trial
    from jobs.train.job import finetune

    setup_logging()
    sweep = TuneConfig.model_validate(cfg)
    trial = tune.get_context().get_trial_id()
    ft = trial_config(sweep, params, f"{sweep.name}-{trial}")
    done = _run_dir(ft) / "result.json"
    if done.is_file():  # a restored sweep re-runs a trial whose fine-tune had finished
        summary = json.loads(done.read_text())
    else:
        summary = finetune(ft, callbacks=[TuneReportCallback()], meta={"sweep": sweep.name})
    scores = score_trial(sweep.selection, sweep.name, trial, model_dir, _run_dir(ft) / "adapter")
    tune.report(
        {
            **scores,
            "steps": summary["steps"],
            "train_loss_last": summary["train_loss_last"],
            "eval_loss": summary.get("eval_loss"),
            "train_wall_s": summary["wall_s"],
            "run_name": ft.run_name,
        }
    )


def _run_dir(cfg: Any) -> Any:
    from jobs.train.run import run_dir_for

    return run_dir_for(cfg)
