"""``FinetuneConfig``: the schema of ``python -m jobs.finetune`` configs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cluster.config import JobConfig, Problem

SIMULATED_GPUS_ENV = "ONPREM_SIMULATED_GPUS"


def simulated_gpus() -> bool:
    """True when GPUs are only advertised (``ray.cluster_utils`` test nodes with ``num_gpus``
    but no CUDA): Ray still places workers on GPU nodes, but they compute on the CPU with gloo.
    For testing placement and failover on one machine; never set on a real fleet."""
    return os.environ.get(SIMULATED_GPUS_ENV) == "1"


ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    train: str = Field(description="training JSONL in the OpenAI chat format")
    valid: str | None = Field(default=None, description="validation JSONL (eval loss)")
    max_seq_len: int = Field(default=512, ge=16, le=131072, description="tokens per sequence")
    packing: bool = Field(
        default=False,
        description="pack short examples into max_seq_len rows (positions restart per "
        "example and attention never crosses examples)",
    )
    mix: dict[str, float] = Field(
        default_factory=dict,
        description="weight per metadata.kind, e.g. {company: 2.0}: each example of that kind "
        "counts this many times per epoch (fractions take a seeded subset); others count once",
    )


class LoraConfig(_Section):
    enabled: bool = Field(default=True, description="false = full fine-tuning")
    r: int = Field(default=16, ge=1, le=1024, description="LoRA rank")
    alpha: float = Field(default=32, gt=0, description="LoRA scaling numerator (alpha / r)")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_LINEAR), min_length=1, description="module names to adapt"
    )


class OptimConfig(_Section):
    lr: float = Field(default=1e-3, gt=0, le=1, description="peak learning rate")
    weight_decay: float = Field(default=0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="warm-up share of steps")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="final lr / peak lr")
    max_grad_norm: float = Field(default=1.0, ge=0, description="gradient clipping (0 = off)")
    optimizer: Literal["torch_adamw", "deepspeed_adamw", "cpu_adam"] = Field(
        default="torch_adamw",
        description="torch_adamw: no compiled ops (CPU default); deepspeed_adamw: FusedAdam "
        "(GPU); cpu_adam: DeepSpeed CPU Adam, needs deepspeed.offload_optimizer=cpu",
    )


class TrainConfig(_Section):
    epochs: float = Field(default=1.0, gt=0, le=100)
    max_steps: int | None = Field(default=None, ge=1, description="overrides epochs when set")
    micro_batch_size: int = Field(default=4, ge=1, description="sequences per worker per pass")
    grad_accum: int = Field(default=1, ge=1, description="passes per optimizer step")
    seed: int = 42
    eval_every: int = Field(default=20, ge=1, description="optimizer steps between evals")
    log_every: int = Field(default=1, ge=1)
    gradient_checkpointing: bool = False


class ScalingSection(_Section):
    num_workers: int = Field(default=2, ge=1, description="Ray Train workers (one per GPU)")
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1, gt=0)
    gpus_per_worker: float = Field(default=1, ge=0, description="used when use_gpu")
    accelerator_type: str | None = Field(default=None, description="e.g. H100, A100, L40S")
    placement: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        default="PACK", description="SPREAD puts workers on different nodes when it can"
    )


class DeepSpeedSection(_Section):
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: Literal["none", "cpu"] = "none"
    offload_params: Literal["none", "cpu"] = Field(default="none", description="ZeRO-3 only")
    bf16: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="auto = bf16 on GPU, fp32 on CPU (bf16 is ~15x slower "
        "on CPUs without native bf16)",
    )

    @field_validator("bf16", mode="before")
    @classmethod
    def _bool_to_str(cls, v: object) -> object:
        return str(v).lower() if isinstance(v, bool) else v


class CheckpointSection(_Section):
    every_steps: int = Field(default=50, ge=1, description="optimizer steps between checkpoints")
    num_to_keep: int = Field(default=2, ge=1)
    storage_path: str | None = Field(
        default=None,
        description="where checkpoints go: a local/NFS dir or s3://bucket/prefix "
        "(default: the runs dir)",
    )
    max_failures: int = Field(default=1, ge=0, description="worker failures to recover from")


class FinetuneConfig(JobConfig):
    """``python -m jobs.finetune``: LoRA (or full) fine-tuning with Ray Train + DeepSpeed."""

    run_name: str = Field(description="name of the run folder under runs/")
    model: str = Field(description="base model: a model store name or an HF model folder")
    data: DataConfig
    lora: LoraConfig = LoraConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingSection = ScalingSection()
    deepspeed: DeepSpeedSection = DeepSpeedSection()
    checkpoint: CheckpointSection = CheckpointSection()
    merge: bool = Field(default=False, description="also write merged/ (a plain HF model)")
    register_model: bool = Field(default=False, description="add the result to the model store")
    resume: bool = Field(default=True, description="continue a stopped run of the same name")
    overwrite: bool = Field(default=False, description="replace a finished run of that name")
    dry_run: bool = Field(
        default=False,
        description="check and explain (data, loss mask, "
        "LoRA, DeepSpeed config), then exit without training",
    )

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", v):
            raise ValueError("must be letters, digits, '.', '_' or '-'. Fix: e.g. smollm2-support")
        return v

    @property
    def cuda(self) -> bool:
        """Whether the workers compute on CUDA (GPU workers, not simulated)."""
        return self.scaling.use_gpu and not simulated_gpus()

    @property
    def bf16(self) -> bool:
        return self.deepspeed.bf16 == "true" or (self.deepspeed.bf16 == "auto" and self.cuda)

    def problems(self) -> list[Problem]:
        out = []
        ds, sc = self.deepspeed, self.scaling
        for key in ("train", "valid"):
            path = getattr(self.data, key)
            if path and not Path(path).is_file():
                out.append(
                    Problem(
                        f"data.{key}",
                        path,
                        "no such file",
                        "give a JSONL path relative to the project root",
                    )
                )
        if ds.bf16 == "true" and not sc.use_gpu:
            out.append(
                Problem(
                    "deepspeed.bf16",
                    "true",
                    "bf16 on CPU was ~15x slower than fp32 here",
                    "use deepspeed.bf16=auto (fp32 on CPU, bf16 on GPU)",
                )
            )
        if ds.offload_params == "cpu" and ds.zero_stage != 3:
            out.append(
                Problem(
                    "deepspeed.offload_params",
                    "cpu",
                    f"parameter offload needs ZeRO-3 (zero_stage is {ds.zero_stage})",
                    "set deepspeed.zero_stage=3 or offload_params=none",
                )
            )
        if ds.offload_optimizer == "cpu" and ds.zero_stage == 0:
            out.append(
                Problem(
                    "deepspeed.offload_optimizer",
                    "cpu",
                    "optimizer offload needs ZeRO 1-3",
                    "set deepspeed.zero_stage to 1, 2 or 3",
                )
            )
        if self.optim.optimizer == "cpu_adam" and ds.offload_optimizer != "cpu":
            out.append(
                Problem(
                    "optim.optimizer",
                    "cpu_adam",
                    "DeepSpeed's CPU Adam runs only with the optimizer offloaded",
                    "set deepspeed.offload_optimizer=cpu, or optim.optimizer=torch_adamw",
                )
            )
        if self.optim.optimizer == "deepspeed_adamw" and not sc.use_gpu:
            out.append(
                Problem(
                    "optim.optimizer",
                    "deepspeed_adamw",
                    "FusedAdam needs CUDA",
                    "use torch_adamw on CPU",
                )
            )
        if sc.accelerator_type and not sc.use_gpu:
            out.append(
                Problem(
                    "scaling.accelerator_type",
                    sc.accelerator_type,
                    "an accelerator type only applies to GPU workers",
                    "set scaling.use_gpu=true or remove accelerator_type",
                )
            )
        if self.merge and not self.lora.enabled:
            out.append(
                Problem(
                    "merge",
                    True,
                    "full fine-tuning already writes a plain model",
                    "remove merge=true (or enable LoRA)",
                )
            )
        return out
