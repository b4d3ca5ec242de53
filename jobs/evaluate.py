"""Evaluate candidates against hand-written reference answers (and retention).

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.evaluate --config jobs/configs/evaluate/smollm2_support.yaml

Writes reports/eval/<name>/eval.json, eval.md (tables, differences with the base model, worst
answers and the PASS/FAIL verdict against the config's thresholds) and eval.png.
Answers are cached per candidate, so an interrupted run resumes without redoing them.
Exit codes: 0 done, 1 failed while running, 2 bad config, data, candidate or endpoint.
"""

from __future__ import annotations

import logging
import sys

from cluster import paths
from cluster.config import cli_config
from cluster.logs import setup_logging
from cluster.usage import cluster_gpu_type, node_accelerator_type, track, workers_held
from jobs.eval.config import EvalConfig
from jobs.eval.run import EvalInputError, evaluate, preflight

log = logging.getLogger("jobs.evaluate")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(EvalConfig, "Evaluate candidates against reference answers.", argv)
    try:
        sets = preflight(cfg)
    except EvalInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("%s", ", ".join(f"{k}: {len(v)} examples" for k, v in sets.items()))
    # Batch candidates run on vLLM engines (one bundle per tensor-parallel rank, per replica):
    # charged those, also if the run fails or stops.
    holds = []
    if any(c.kind == "batch" for c in cfg.candidates):
        e = cfg.engine
        accel = (cluster_gpu_type() or "GPU") if e.gpus else node_accelerator_type()
        ranks = e.replicas * len(e.placement()["bundles"])
        holds.append(workers_held(accel, ranks, e.cpus, e.gpus))
    meta = {"candidates": [c.name for c in cfg.candidates]}
    with track("evaluate", cfg.name, meta=meta, holds=holds) as run:
        result = evaluate(cfg, sets)
        run.meta.update(wall_s=result["wall_s"])
    for line in result["comparison"]:
        log.info("%s", line)
    for name, v in result["verdict"]["candidates"].items():
        failed = [c["threshold"] for c in v["checks"] if not c["pass"]]
        log.info(
            "verdict %s: %s", name, "PASS" if v["pass"] else "FAIL (" + ", ".join(failed) + ")"
        )
    log.info("report: %s", paths.reports_dir() / "eval" / cfg.name / "eval.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
