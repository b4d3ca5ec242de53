"""DPO on Ray Train: each worker runs TRL's ``DPOTrainer`` (Hugging Face Trainer, DDP over the
process group Ray Train set up) on the supervised model with a new LoRA adapter; the reference
is the same model with the adapter switched off, i.e. the supervised model itself. Progress
goes to the job log every step; rank 0 reports the adapter as the run's checkpoint.

DeepSpeed is not used here: the adapter and its optimizer state are a few MB per worker, which
ZeRO has nothing to shard; the supervised fine-tune before it runs under DeepSpeed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("jobs.preference")


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import contextlib
    import io
    import tempfile

    import ray.train
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from ray.train.huggingface.transformers import prepare_trainer
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    dpo, cpus, cuda = config["dpo"], config["cpus_per_worker"], config["use_gpu"]
    if not cuda:
        torch.set_num_threads(max(1, int(cpus)))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    tokenizer = AutoTokenizer.from_pretrained(config["sft"])
    model = AutoModelForCausalLM.from_pretrained(
        config["sft"], dtype=torch.bfloat16 if cuda else torch.float32
    )
    steps = dpo["max_steps"]

    class Progress(TrainerCallback):
        t0, last = time.monotonic(), -1

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.monotonic()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs, done = logs or {}, state.global_step
            if "loss" not in logs or done == self.last:
                return
            self.last = done
            eta = (time.monotonic() - self.t0) / max(done, 1) * (steps - done)
            metrics = {
                "step": done,
                "total_steps": steps,
                "loss": logs["loss"],
                "reward_accuracy": logs.get("rewards/accuracies"),
                "reward_margin": logs.get("rewards/margins"),
            }
            if rank == 0:
                print(
                    f"[dpo] step {done}/{steps} | loss {logs['loss']:.4f} | reward accuracy "
                    f"{logs.get('rewards/accuracies', float('nan')):.2f} | margin "
                    f"{logs.get('rewards/margins', float('nan')):.3f} | ETA {eta:.0f}s",
                    flush=True,
                )
            if done < steps:
                ray.train.report(metrics)

    out = Path(tempfile.mkdtemp(prefix="onprem-dpo-"))
    args = DPOConfig(
        output_dir=str(out / "trainer"),
        beta=dpo["beta"],
        learning_rate=dpo["lr"],
        max_steps=steps,
        per_device_train_batch_size=dpo["micro_batch_size"],
        max_length=dpo["max_length"],
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=dpo["seed"],
        use_cpu=not cuda,
        bf16=cuda,
        ddp_backend="nccl" if cuda else "gloo",
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=dpo["lora_r"],
        lora_alpha=dpo["lora_alpha"],
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    # Tokenizing the pairs hashes TRL's functions with dill, whose bytecode listing (meant for
    # a captured stdout) reaches a Ray worker's log: hundreds of lines, kept out.
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(config["pairs"]),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[Progress()],
        )
    result = prepare_trainer(trainer).train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    final = {
        "step": trainer.state.global_step,
        "total_steps": steps,
        "loss": history[-1]["loss"] if history else None,
        "loss_first": history[0]["loss"] if history else None,
        "reward_accuracy": history[-1].get("rewards/accuracies") if history else None,
        "reward_margin": history[-1].get("rewards/margins") if history else None,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "world_size": world,
    }
    checkpoint = None
    if rank == 0:
        trainer.model.save_pretrained(out / "adapter")
        tokenizer.save_pretrained(out / "adapter")
        checkpoint = ray.train.Checkpoint.from_directory(str(out / "adapter"))
    ray.train.report(final, checkpoint=checkpoint)


def fit(config: dict[str, Any], storage: Path, name: str) -> Any:
    """Run the workers; the Ray Train result (its checkpoint: the adapter)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cuda = config["use_gpu"]
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=config["num_workers"],
            use_gpu=cuda,
            resources_per_worker={"CPU": config["cpus_per_worker"], **({"GPU": 1} if cuda else {})},
        ),
        run_config=RunConfig(storage_path=str(storage), name=name),
        torch_config=TorchConfig(backend="nccl" if cuda else "gloo"),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    return result
