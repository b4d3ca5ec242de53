"""What a fine-tune would do, shown before it runs (``python -m jobs.finetune ... dry_run=true``):
the loss mask on a real example, what LoRA trains, and the DeepSpeed config."""

from __future__ import annotations

import json
from typing import Any

from cluster.chat import Example
from jobs.train.config import FinetuneConfig
from jobs.train.data import IGNORE, tokenize_example


def show_mask(tokenizer: Any, example: Example) -> str:
    """The rendered conversation with the trained tokens in [[double brackets]]."""
    tok = tokenize_example(tokenizer, example)
    out, inside = [], False
    for token_id, label in zip(tok.input_ids, tok.labels, strict=True):
        trained = label != IGNORE
        if trained and not inside:
            out.append("[[")
        if not trained and inside:
            out.append("]]")
        inside = trained
        out.append(tokenizer.decode([token_id]))
    if inside:
        out.append("]]")
    return "".join(out)


def lora_summary(cfg: FinetuneConfig, model_dir: str) -> str:
    from jobs.train.loop import build_model

    model = build_model(cfg, model_dir)
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    what = (
        f"LoRA r={cfg.lora.r} alpha={cfg.lora.alpha} on {', '.join(cfg.lora.target_modules)}"
        if cfg.lora.enabled
        else "full fine-tuning"
    )
    return (
        f"{what}: {trained:,} trainable of {total:,} parameters "
        f"({100 * trained / total:.2f}%); the base weights stay frozen"
    )


def explain(
    cfg: FinetuneConfig, tokenizer: Any, example: Example, model_dir: str, ds_config: dict[str, Any]
) -> str:
    return "\n".join(
        [
            "loss mask on the first training example (trained tokens in [[...]]):",
            show_mask(tokenizer, example),
            lora_summary(cfg, model_dir),
            "DeepSpeed config (saved as ds_config.json when the run starts):",
            json.dumps(ds_config, indent=2),
        ]
    )
