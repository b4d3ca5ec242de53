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

from cluster.config import cli_config
from cluster.logs import setup_logging
from jobs.train.config import FinetuneConfig
from jobs.train.ds_config import deepspeed_config
from jobs.train.job import TrainingFailed, check, finetune
from jobs.train.run import Preflight, PreflightError

log = logging.getLogger("jobs.finetune")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(FinetuneConfig, "Fine-tune with Ray Train + DeepSpeed + LoRA.", argv)
    try:
        pre = check(cfg)
        if cfg.dry_run:
            return _explain(cfg, pre)
        finetune(cfg, pre)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingFailed as exc:
        log.error("training failed: %s", exc)
        return 1
    return 0


def _explain(cfg: FinetuneConfig, pre: Preflight) -> int:
    """``dry_run=true``: the loss mask on the first example, the LoRA size, the DeepSpeed
    config; nothing is trained."""
    from transformers import AutoTokenizer

    from cluster.chat import read_chat_jsonl
    from jobs.train.explain import explain

    example = read_chat_jsonl(cfg.data.train)[0]
    tokenizer = AutoTokenizer.from_pretrained(pre.model_dir)
    print(explain(cfg, tokenizer, example, str(pre.model_dir), deepspeed_config(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
