"""Sweep fine-tune recipes with Ray Tune and pick the one that scores best on a selection split.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.tune --config jobs/configs/tune/smollm2_support.yaml
    python -m jobs.tune --config jobs/configs/tune/smollm2_support.yaml num_samples=2 \
        trial_overrides='{train.max_steps: 4}'

Each trial is a fine-tune (Ray Train + DeepSpeed + LoRA, charged in the usage ledger) with
values drawn for the config's ``space`` (dotted fine-tune fields), then scored on the
selection split by greedy generation (vLLM through ray.data.llm), never on the held-out or
retention sets the verdict judges on. Submitting the same sweep again after its driver was
killed restores it: finished trials are kept. Writes reports/tune/<name>/ (report.md,
trials.csv, tradeoff.png, best.yaml: the best trial as a runnable fine-tune config).
Exit codes: 0 done (failed trials are reported, not fatal), 1 no trial finished, 2 bad config
or input (nothing was started).
"""

from __future__ import annotations

import logging
import sys

from cluster import paths
from cluster.config import cli_config
from cluster.logs import setup_logging
from cluster.store import ModelStore, StoreError
from jobs.sweep.config import TuneConfig, trial_config
from jobs.sweep.report import write
from jobs.sweep.run import results, sweep_dir, tuner
from jobs.sweep.score import score_base
from jobs.train.run import PreflightError

log = logging.getLogger("jobs.tune")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(TuneConfig, "Sweep fine-tune recipes with Ray Tune.", argv)
    base = trial_config(cfg, {}, "check")
    try:
        model_dir = str(ModelStore().resolve(base.model))
    except StoreError as exc:
        print(f"error: finetune model: {exc}", file=sys.stderr)
        return 2
    try:
        log.info("sweep %s: scoring the base model on the selection split once", cfg.name)
        score_base(cfg.selection, cfg.name, model_dir)
        grid = tuner(cfg, model_dir).fit()
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = results(grid)
    folder = paths.reports_dir() / "tune" / cfg.name
    best = write(cfg, table, folder)
    failed = int((table["status"] == "ERROR").sum())
    log.info(
        "sweep %s: %d trials, %d failed; report: %s (Tune's state: %s)",
        cfg.name,
        len(table),
        failed,
        folder / "report.md",
        sweep_dir(cfg),
    )
    if best is None:
        log.error("no trial finished")
        return 1
    log.info(
        "best: %s, score %.3f on the selection split (%s), recipe %s",
        best["trial"],
        best["score"],
        "passes every check" if best["pass"] else "fails a check",
        folder / "best.yaml",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
