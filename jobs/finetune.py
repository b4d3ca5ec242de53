"""Fine-tune a chat model with Ray Train + DeepSpeed (ZeRO) + PEFT LoRA on OpenAI-format data.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.finetune --config jobs/configs/finetune/smollm2_lora.yaml
    python -m jobs.finetune --config jobs/configs/finetune/smollm2_lora.yaml train.max_steps=5

The same config runs on CPU workers here and on GPU workers of a fleet
(``scaling.use_gpu=true scaling.num_workers=16 scaling.accelerator_type=H100``).
Exit codes: 0 done, 1 training failed, 2 bad config or input (nothing was started).
"""

from __future__ import annotations

import logging
import sys
import time

from cluster.config import cli_config
from cluster.logs import setup_logging
from cluster.usage import track
from jobs.train.config import FinetuneConfig
from jobs.train.ds_config import deepspeed_config
from jobs.train.run import (
    PreflightError,
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


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(FinetuneConfig, "Fine-tune with Ray Train + DeepSpeed + LoRA.", argv)
    try:
        pre = preflight(cfg)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("data checked\n%s", describe_stats(pre.stats))
    if pre.resuming:
        log.info("run %s has checkpoints: resuming from the latest", cfg.run_name)
    ds_config = deepspeed_config(cfg)
    if cfg.dry_run:
        from transformers import AutoTokenizer

        from cluster.chat import read_chat_jsonl
        from jobs.train.explain import explain

        example = read_chat_jsonl(cfg.data.train)[0]
        tokenizer = AutoTokenizer.from_pretrained(pre.model_dir)
        print(explain(cfg, tokenizer, example, str(pre.model_dir), ds_config))
        return 0
    try:
        waiting = cluster_capacity(cfg)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if waiting:
        log.warning(waiting)
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
        with track("finetune", cfg.run_name, meta={"model": cfg.model}, holds=holds) as run:
            result = make_trainer(cfg, pre, ds_config).fit()
            if result.error:
                raise result.error
            summary = write_outputs(cfg, pre, result, time.monotonic() - t0)
            run.allocations = allocations(cfg, summary.get("placement") or [])
            run.meta.update(steps=summary.get("steps"), tokens_seen=summary.get("tokens_seen"))
    except Exception as exc:
        log.error("training failed: %s", exc)
        return 1
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
    return 0


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


if __name__ == "__main__":
    sys.exit(main())
