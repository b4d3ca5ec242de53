"""The per-worker training loop that Ray Train's ``TorchTrainer`` runs on every worker.

Each worker: joins the process group Ray Train set up (gloo on CPU, NCCL on GPU), opens its
Ray Data iterators (the training units and validation examples the driver checked), loads the
base model, wraps it with PEFT LoRA, hands it to
``deepspeed.initialize`` with the generated config, restores the latest checkpoint if Ray Train
gives one (after a worker failure, or a resumed run), then trains. Every ``log_every`` steps all
ranks report metrics (rank 0's are logged by the progress callback on the controller); every
``checkpoint.every_steps`` all ranks save the DeepSpeed checkpoint and rank 0 the adapter, and
all report it. Dropout is seeded per step and the data order is a function of the step, so a
resumed run continues exactly where the checkpoint left it.

The loss is weighted by tokens: every assistant token of a step counts once, whichever
micro-batch, accumulation step or rank it lands in (``token_weighted_loss``).
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
from jobs.train.data import Schedule, collate, rank_units, targets

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


def token_weighted_loss(out: Any, n_targets: float, grad_accum: int, world: int) -> Any:
    """The loss to hand to ``engine.backward`` for one micro-batch so that the step's gradient
    is that of the mean over all ``n_targets`` target tokens of the step (all micro-batches,
    all ranks). DeepSpeed divides by ``grad_accum`` and averages over ranks, which the factor
    undoes; ``out.loss`` must be the micro-batch's summed token loss (``num_items_in_batch=1``,
    the way transformers' Trainer passes token counts)."""
    return out.loss * (grad_accum * world / n_targets)


def evaluate(
    engine: Any,
    valid: Any,
    cfg: FinetuneConfig,
    rank: int,
    world: int,
    pad_id: int,
    device: Any,
) -> float | None:
    """Token-weighted mean loss over the validation set (each rank takes every world-th
    example)."""
    import torch

    if valid is None:
        return None
    loss_sum, count = 0.0, 0.0
    engine.eval()
    units = [u for i, u in enumerate(_in_order(valid)) if i % world == rank]
    with torch.no_grad():
        for i in range(0, len(units), cfg.train.micro_batch_size):
            batch = collate(units[i : i + cfg.train.micro_batch_size], pad_id)
            out = engine(**{k: v.to(device) for k, v in batch.items()}, num_items_in_batch=1)
            loss_sum += out.loss.detach().item()
            count += targets(batch)
    # Ranks with fewer examples still take part in the collectives ZeRO-3 needs.
    engine.train()
    total_loss, total_count = _allreduce([loss_sum, count], device)
    return total_loss / max(total_count, 1.0)


def _in_order(it: Any) -> list[dict[str, Any]]:
    return [row for table in it.iter_batches(batch_format="pyarrow") for row in table.to_pylist()]


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
    train_data = ray.train.get_dataset_shard("train")
    valid_data = ray.train.get_dataset_shard("valid") if config["has_valid"] else None
    # Our progress line says where training is; a Ray Data bar per worker per epoch does not.
    # A dataset runs with the context it was made with (the driver's), not this process's.
    for shard in (train_data, valid_data):
        if shard is not None:
            shard.get_context().enable_progress_bars = False
    schedule = Schedule(
        config["n_units"], cfg.train.micro_batch_size, cfg.train.grad_accum, world, cfg.train.seed
    )
    total = schedule.total_steps(cfg.train.epochs, cfg.train.max_steps)
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
    if state["step"] == 0 and valid_data is not None:
        eval_loss = evaluate(engine, valid_data, cfg, rank, world, pad_id, device)
        state["eval_loss_first"] = eval_loss
    engine.train()
    ga = cfg.train.grad_accum
    batches = schedule.step_batches(
        lambda epoch: rank_units(train_data.iter_batches, rank, world, cfg.train.seed, epoch),
        state["step"],
        total,
    )
    # A step's time runs from the end of the previous step's training, so tokens/s includes
    # Ray Train's per-step reporting but not evaluations and checkpoints.
    t0 = time.perf_counter()
    for step, units in zip(range(state["step"], total), batches, strict=True):
        torch.manual_seed(cfg.train.seed + step * world + rank)  # dropout, resumable
        micro = [collate(mb, pad_id) for mb in units]
        mine = sum(targets(b) for b in micro)
        tokens = sum(len(u["input_ids"]) for mb in units for u in mb)
        (n_targets,) = _allreduce([mine], device)
        loss_sum = 0.0
        for batch in micro:
            out = engine(**{k: v.to(device) for k, v in batch.items()}, num_items_in_batch=1)
            engine.backward(token_weighted_loss(out, n_targets, ga, world))
            engine.step()
            loss_sum += out.loss.detach().item()
        loss_sum, tok_sum = _allreduce([loss_sum, tokens], device)
        (dt,) = _allreduce([time.perf_counter() - t0], device, op="max")
        t0 = time.perf_counter()
        loss = loss_sum / max(n_targets, 1.0)
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
            "epoch": schedule.epoch_at(step + 1),
            "step_time_s": dt,
            "restarts": state["restarts"],
        }
        extra = False
        if valid_data is not None and ((step + 1) % cfg.train.eval_every == 0 or last):
            eval_loss = evaluate(engine, valid_data, cfg, rank, world, pad_id, device)
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
