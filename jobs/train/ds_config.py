"""The DeepSpeed config generated from a ``FinetuneConfig`` (saved as ``ds_config.json``)."""

from __future__ import annotations

from typing import Any

from jobs.train.config import FinetuneConfig


def deepspeed_config(cfg: FinetuneConfig) -> dict[str, Any]:
    """The JSON DeepSpeed reads. The optimizer is declared here only when DeepSpeed's own is
    wanted; ``torch_adamw`` is passed to ``deepspeed.initialize`` instead (no compiled ops)."""
    ds, tr, opt = cfg.deepspeed, cfg.train, cfg.optim
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.zero_stage >= 1:
        zero.update(overlap_comm=cfg.cuda, contiguous_gradients=True)
    if ds.offload_optimizer == "cpu":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": cfg.cuda}
    if ds.offload_params == "cpu":
        zero["offload_param"] = {"device": "cpu", "pin_memory": cfg.cuda}
    if ds.zero_stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True)
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": tr.micro_batch_size,
        "gradient_accumulation_steps": tr.grad_accum,
        "train_batch_size": tr.micro_batch_size * tr.grad_accum * cfg.scaling.num_workers,
        "gradient_clipping": opt.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": cfg.bf16},
        "fp16": {"enabled": False},
        "steps_per_print": 10**9,  # progress is ours (step, loss, tokens/s, ETA)
        "wall_clock_breakdown": False,
    }
    if opt.optimizer in ("deepspeed_adamw", "cpu_adam"):
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": opt.lr, "betas": list(opt.betas), "weight_decay": opt.weight_decay},
        }
        if opt.optimizer == "cpu_adam":
            config["zero_force_ds_cpu_optimizer"] = True
    return config
