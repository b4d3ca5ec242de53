"""The per-worker training loop that Ray Train's ``TorchTrainer`` runs on every worker.

Each worker: joins the process group Ray Train set up (gloo on CPU, NCCL on GPU), tokenizes the
data (deterministic, cheap), loads the base model, wraps it with PEFT LoRA, hands it to
``deepspeed.initialize`` with the generated config, restores the latest checkpoint if Ray Train
gives one (after a worker failure, or a resumed run), then trains. Every ``log_every`` steps all
ranks report metrics (rank 0's are logged by the progress callback on the controller); every
``checkpoint.every_steps`` all ranks save the DeepSpeed checkpoint and rank 0 the adapter, and
all report it. Dropout is seeded per step and the data sampler is a function of the step, so a
resumed run continues exactly where the checkpoint left it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster.accelerators import gpu_model_from_name
from jobs.train.config import FinetuneConfig
from jobs.train.data import Sampler, Tokenized, collate, pack

DS_TAG = "ds"
# A compile of DeepSpeed's CPU shared-memory op takes about a minute on 2 cores; a build lock
# older than this was left by a process killed mid-compile and would block every run forever.
STALE_BUILD_LOCK_S = 900.0


def clear_stale_build_locks(max_age_s: float = STALE_BUILD_LOCK_S) -> list[Path]:
    """Remove torch extension build locks (``<build root>/*/*/lock``) older than ``max_age_s``.

    torch's JIT build (which DeepSpeed uses for its ops, on CPU the shared-memory collective)
    holds a plain lock file while one process compiles and makes every other process wait for
    it to disappear; a compile that was killed leaves it behind and ``deepspeed.init_distributed``
    then waits forever, silently. Returns the locks removed (each is also logged)."""
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    removed = []
    now = time.time()
    for lock in root.glob("*/*/lock"):
        try:
            age = now - lock.stat().st_mtime
            if age > max_age_s:
                lock.unlink()
                removed.append(lock)
                print(
                    f"[finetune] removed a stale build lock {lock} ({age / 60:.0f} min old, "
                    "left by a compile that was interrupted); the op is rebuilt",
                    flush=True,
                )
        except FileNotFoundError:  # another worker removed or released it
            continue
    return removed


def lr_lambda(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then cosine/linear/constant."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - (1.0 - min_ratio) * progress
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_model(cfg: FinetuneConfig, model_dir: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.config.use_cache = False
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=list(cfg.lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    return model


def _allreduce(values: list[float], device: Any, op: str = "sum") -> list[float]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()


def evaluate(
    engine: Any,
    items: list[Tokenized],
    cfg: FinetuneConfig,
    rank: int,
    world: int,
    pad_id: int,
    device: Any,
) -> float | None:
    """Token-weighted mean loss over the validation set, split across ranks."""
    import torch

    if not items:
        return None
    mine = [items[i] for i in range(rank, len(items), world)]
    loss_sum, count = 0.0, 0.0
    engine.eval()
    with torch.no_grad():
        for i in range(0, len(mine), cfg.train.micro_batch_size):
            batch = {
                k: v.to(device)
                for k, v in collate(mine[i : i + cfg.train.micro_batch_size], None, pad_id).items()
            }
            n = float((batch["labels"][:, 1:] != -100).sum())
            loss_sum += engine(**batch).loss.detach().item() * n
            count += n
    # Ranks with fewer examples still take part in the collectives ZeRO-3 needs.
    engine.train()
    total_loss, total_count = _allreduce([loss_sum, count], device)
    return total_loss / max(total_count, 1.0)


def save_final_model(engine: Any, cfg: FinetuneConfig, out: Path, rank: int) -> None:
    """Rank 0 writes the adapter (LoRA) or the whole model. Under ZeRO-3 the weights are
    sharded, so every rank takes part in gathering them first."""
    module = engine.module
    state = None
    if cfg.deepspeed.zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if state is not None:
            module.save_pretrained(out, state_dict=state)
        else:
            module.save_pretrained(out)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import deepspeed
    import ray.train
    import torch
    import torch.distributed as dist
    from ray.train import Checkpoint
    from transformers import AutoTokenizer

    _quiet_ray_train_reports()
    cfg = FinetuneConfig.model_validate(config["cfg"])
    ds_config = config["ds_config"]
    model_dir = config["model_dir"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    use_gpu = cfg.cuda
    if use_gpu:
        from ray.train.torch import get_device

        device = get_device()
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, int(cfg.scaling.cpus_per_worker)))
    clear_stale_build_locks()
    deepspeed.init_distributed(dist_backend="nccl" if use_gpu else "gloo")

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_items: list[Tokenized] = config["train"]
    valid_items: list[Tokenized] = config["valid"]
    bins = pack(train_items, cfg.data.max_seq_len, cfg.train.seed) if cfg.data.packing else None
    sampler = Sampler(
        len(bins) if bins else len(train_items),
        cfg.train.micro_batch_size,
        cfg.train.grad_accum,
        world,
        cfg.train.seed,
    )
    total = sampler.total_steps(cfg.train.epochs, cfg.train.max_steps)
    warmup = int(cfg.optim.warmup_ratio * total)

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, model_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = None
    if cfg.optim.optimizer == "torch_adamw":
        optimizer = torch.optim.AdamW(
            params, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
        )

    def scheduler(opt: Any) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_lambda(s, total, warmup, cfg.optim.schedule, cfg.optim.min_lr_ratio)
        )

    engine, _, _, sched = deepspeed.initialize(
        model=model,
        model_parameters=params,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=ds_config,
    )
    # Carried through checkpoints, so a resumed run reports on the whole run.
    state: dict[str, Any] = {
        "step": 0,
        "tokens_seen": 0,
        "train_seconds": 0.0,
        "train_loss_first": None,
        "eval_loss_first": None,
        "restarts": 0,
    }
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as folder:
            engine.load_checkpoint(
                folder,
                tag=DS_TAG,
                load_module_strict=False,
                load_optimizer_states=True,
                load_lr_scheduler_states=True,
            )
            state = json.loads((Path(folder) / "train_state.json").read_text())
        state["restarts"] += 1

    node = {
        "rank": rank,
        "node_id": ray.get_runtime_context().get_node_id(),
        "accelerator_type": os.environ.get("ONPREM_ACCELERATOR_TYPE")
        or (gpu_model_from_name(torch.cuda.get_device_name(device)) if use_gpu else "CPU"),
    }
    placement: list[Any] = [None] * world
    dist.all_gather_object(placement, node)

    eval_loss = None
    if state["step"] == 0 and valid_items:
        eval_loss = evaluate(engine, valid_items, cfg, rank, world, pad_id, device)
        state["eval_loss_first"] = eval_loss
    engine.train()
    # A step's time runs from the end of the previous step's training, so tokens/s includes
    # Ray Train's per-step reporting but not evaluations and checkpoints.
    t0 = time.perf_counter()
    for step in range(state["step"], total):
        torch.manual_seed(cfg.train.seed + step * world + rank)  # dropout, resumable
        losses, tokens = [], 0
        for unit_ids in sampler.micro_batches(step, rank):
            if bins is None:
                rows, units = [train_items[i] for i in unit_ids], None
            else:
                flat = [i for u in unit_ids for i in bins[u]]
                rows = [train_items[i] for i in flat]
                pos = {ex: j for j, ex in enumerate(flat)}
                units = [[pos[i] for i in bins[u]] for u in unit_ids]
            batch = {k: v.to(device) for k, v in collate(rows, units, pad_id).items()}
            out = engine(**batch)
            engine.backward(out.loss)
            engine.step()
            losses.append(out.loss.detach().item())
            tokens += int(batch["attention_mask"].sum())
        loss_sum, tok_sum = _allreduce([sum(losses) / len(losses), tokens], device)
        (dt,) = _allreduce([time.perf_counter() - t0], device, op="max")
        t0 = time.perf_counter()
        loss = loss_sum / world
        state["tokens_seen"] += int(tok_sum)
        state["train_seconds"] += dt
        state["step"] = step + 1
        state["train_loss_first"] = state["train_loss_first"] or loss
        state["train_loss_last"] = loss
        last = step + 1 == total
        metrics = {
            "kind": "train",
            "step": step + 1,
            "total_steps": total,
            "loss": loss,
            "lr": sched.get_last_lr()[0],
            "grad_norm": _grad_norm(engine),
            "tokens_per_s": tok_sum / max(dt, 1e-9),
            "tokens_seen": state["tokens_seen"],
            "epoch": sampler.epoch_at(step + 1),
            "step_time_s": dt,
            "restarts": state["restarts"],
        }
        extra = False
        if valid_items and ((step + 1) % cfg.train.eval_every == 0 or last):
            eval_loss = evaluate(engine, valid_items, cfg, rank, world, pad_id, device)
            metrics["eval_loss"] = eval_loss
            extra = True
        if (step + 1) % cfg.checkpoint.every_steps == 0 or last:
            if last:
                metrics.update(
                    final=True, summary=_summary(state, eval_loss, placement, world, cfg)
                )
            _checkpoint(engine, cfg, state, metrics, rank, model_dir, last, Checkpoint)
            extra = True
        elif (step + 1) % cfg.train.log_every == 0 or extra:
            ray.train.report(metrics)
        if extra:
            t0 = time.perf_counter()
    # A restart from the final checkpoint has nothing left to do: Ray Train keeps that
    # checkpoint and its metrics as the run's result.


def _quiet_ray_train_reports() -> None:
    """Ray Train logs every report at INFO on every worker; our progress line says it once."""
    import logging

    try:
        from ray.train.v2._internal.execution import context

        context.logger.setLevel(logging.WARNING)
    except (ImportError, AttributeError):
        pass


def _grad_norm(engine: Any) -> float | None:
    norm = engine.get_global_grad_norm()
    try:
        return None if norm is None else float(norm)
    except (TypeError, ValueError):
        return None


def _summary(
    state: dict[str, Any],
    eval_loss: float | None,
    placement: list[Any],
    world: int,
    cfg: FinetuneConfig,
) -> dict[str, Any]:
    return {
        "train_loss_first": state["train_loss_first"],
        "train_loss_last": state["train_loss_last"],
        "eval_loss_first": state["eval_loss_first"],
        "eval_loss": eval_loss,
        "steps": state["step"],
        "tokens_seen": state["tokens_seen"],
        "train_seconds": state["train_seconds"],
        "tokens_per_s": state["tokens_seen"] / max(state["train_seconds"], 1e-9),
        "world_size": world,
        "restarts": state["restarts"],
        "placement": placement,
        "zero_stage": cfg.deepspeed.zero_stage,
        "dtype": "bf16" if cfg.bf16 else "fp32",
    }


def _checkpoint(
    engine: Any,
    cfg: FinetuneConfig,
    state: dict[str, Any],
    metrics: dict[str, Any],
    rank: int,
    model_dir: str,
    last: bool,
    checkpoint_cls: Any,
) -> None:
    import ray.train

    tmp = Path(tempfile.mkdtemp(prefix="onprem-ckpt-"))
    try:
        engine.save_checkpoint(
            str(tmp),
            tag=DS_TAG,
            client_state={"step": state["step"]},
            exclude_frozen_parameters=cfg.lora.enabled,
        )
        save_final_model(engine, cfg, tmp / ("adapter" if cfg.lora.enabled else "model"), rank)
        if rank == 0:
            (tmp / "train_state.json").write_text(json.dumps(state))
            if last and not cfg.lora.enabled:
                for f in Path(model_dir).iterdir():
                    if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
                        shutil.copy(f, tmp / "model" / f.name)
        ray.train.report(metrics, checkpoint=checkpoint_cls.from_directory(str(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
