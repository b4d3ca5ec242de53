"""The preference stage after a supervised fine-tune: DPO on the model's own mistakes.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.preference --config jobs/configs/preference/smollm2_dpo.yaml

The supervised model (a fine-tune's merged/ folder) answers training prompts greedily (vLLM
through ray.data.llm); its wrong answers (a company fact missed, or the company's facts lent to
another company) are paired with the training answers, and TRL's DPOTrainer trains a LoRA
adapter on those pairs under Ray Train (jobs/prefs/). Charged in the usage ledger as a
fine-tune. Writes runs/<run_name>/: pairs.jsonl, adapter/, merged/ (evaluate it like any
fine-tune: a candidate with model: runs/<run_name>/merged), result.json.
Exit codes: 0 done (also when the model got nothing wrong: no pairs, no training), 1 failed
while running, 2 bad config or input (nothing was started).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time

from cluster import paths
from cluster.atomic import replacing, write_text
from cluster.chat import ChatFormatError
from cluster.config import cli_config
from cluster.logs import setup_logging
from cluster.usage import node_accelerator_type, track, workers_held
from jobs.prefs.config import PreferenceConfig
from jobs.prefs.pairs import answer, draw, make_pairs, write_pairs

log = logging.getLogger("jobs.preference")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(PreferenceConfig, "DPO on a fine-tuned model's own mistakes.", argv)
    missing = cfg.missing_model()
    if missing:
        print(f"error: {missing.render()}", file=sys.stderr)
        return 2
    try:
        drawn = draw(cfg.pairs)
    except ChatFormatError as exc:
        print(f"error: pairs.train: {exc}", file=sys.stderr)
        return 2
    import ray

    from jobs.prefs.train import fit
    from jobs.train.run import merge_adapter

    ray.init()
    run_dir, t0, sft = paths.runs_dir() / cfg.run_name, time.monotonic(), str(cfg.sft_dir)
    sc = cfg.scaling
    accel = "GPU" if sc.use_gpu else node_accelerator_type()
    holds = [workers_held(accel, sc.num_workers, sc.cpus_per_worker, 1.0 if sc.use_gpu else 0)]
    meta = {"stage": "dpo", "sft": sft}
    try:
        with track("finetune", cfg.run_name, meta=meta, holds=holds) as run:
            log.info("the supervised model answers %d training prompts", len(drawn))
            pairs, stats = make_pairs(drawn, answer(sft, drawn, cfg.pairs))
            log.info("wrong answers -> pairs: %s (%d pairs)", stats, len(pairs))
            run_dir.mkdir(parents=True, exist_ok=True)
            write_pairs(run_dir / "pairs.jsonl", pairs)
            if not pairs:
                log.info("the supervised model got every drawn prompt right: nothing to train")
                return 0
            config = {
                "sft": sft,
                "pairs": pairs,
                "dpo": cfg.dpo.model_dump(),
                **sc.model_dump(),
            }
            result = fit(config, paths.runs_dir(), cfg.run_name)
            with result.checkpoint.as_directory() as ckpt, replacing(run_dir / "adapter") as tmp:
                shutil.copytree(ckpt, tmp)
            with replacing(run_dir / "merged") as tmp:
                tmp.mkdir()
                merge_adapter(sft, run_dir / "adapter", tmp)
            summary = {
                **result.metrics,
                **stats,
                "pairs": len(pairs),
                "sft": sft,
                "wall_s": time.monotonic() - t0,
            }
            run.meta.update(steps=summary.get("step"), pairs=len(pairs))
    except Exception as exc:
        log.error("preference stage failed: %s", exc)
        return 1
    write_text(run_dir / "result.json", json.dumps(summary, indent=2, default=str) + "\n")
    log.info(
        "done in %.0f s: DPO loss %s -> %s, reward accuracy %s; model in %s",
        summary["wall_s"],
        summary.get("loss_first"),
        summary.get("loss"),
        summary.get("reward_accuracy"),
        run_dir / "merged",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
