"""``PreferenceConfig``: the schema of ``python -m jobs.preference`` configs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cluster import paths
from cluster.config import FolderName, JobConfig, Problem
from jobs.eval.config import Engine

# The sets the evaluation's verdict is judged on: preference pairs never come from them.
JUDGED_SETS = ("data/support_chat/valid.jsonl", "data/support_chat/retention.jsonl")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pairs(_Strict):
    """Where the pairs come from: training prompts the supervised model answers greedily; an
    answer that misses the fact (company questions) or borrows the company's facts (other
    companies' questions) is the rejected side, the training answer the chosen one."""

    train: str = Field(default="data/support_chat/train.jsonl", description="chat JSONL")
    company_kinds: list[str] = Field(
        default_factory=lambda: ["company", "company_paraphrase"],
        description="metadata.kind of questions whose answers carry metadata.facts",
    )
    other_kinds: list[str] = Field(
        default_factory=lambda: ["contrast_mirror"],
        description="metadata.kind of other companies' questions, answered without our facts",
    )
    company: str | None = Field(
        default=None, description="the company's name: an other company's answer naming it borrowed"
    )
    per_kind: int = Field(default=96, ge=1, description="prompts drawn from each of the two")
    seed: int = Field(default=0, description="the draw (the same seed, the same prompts)")
    max_tokens: int = Field(default=48, ge=1, le=1024, description="the answers' length")
    engine: Engine = Engine()


class Dpo(_Strict):
    beta: float = Field(default=0.1, gt=0, le=10, description="DPO's beta: how far to move")
    lr: float = Field(default=5e-5, gt=0, le=1, description="learning rate")
    max_steps: int = Field(default=32, ge=1, description="optimizer steps")
    micro_batch_size: int = Field(default=4, ge=1, description="pairs per worker per step")
    max_length: int = Field(default=256, ge=16, description="prompt + answer, tokens")
    lora_r: int = Field(default=16, ge=1, description="rank of the new LoRA adapter")
    lora_alpha: int = Field(default=32, ge=1, description="its alpha")
    seed: int = Field(default=0, description="the trainer's seed")


class Scaling(_Strict):
    num_workers: int = Field(default=2, ge=1, description="Ray Train workers (DDP)")
    cpus_per_worker: float = Field(default=1, gt=0, description="CPUs per worker")
    use_gpu: bool = Field(default=False, description="GPU workers: bf16, NCCL")


class PreferenceConfig(JobConfig):
    """``python -m jobs.preference``: DPO on top of a supervised fine-tune."""

    run_name: FolderName = Field(description="runs/<run_name>/: the pairs, adapter, merged")
    sft: str = Field(description="the supervised model: a fine-tune's merged/ folder")
    pairs: Pairs = Pairs()
    dpo: Dpo = Dpo()
    scaling: Scaling = Scaling()

    @property
    def sft_dir(self) -> Path:
        """The supervised model's folder (a relative path is under the platform's root)."""
        return paths.resolve(self.sft)

    def missing_model(self) -> Problem | None:
        """The supervised model, checked when the job starts (a shipped config names a run that
        a fresh checkout has not trained yet)."""
        if (self.sft_dir / "config.json").is_file():
            return None
        fix = "give a fine-tune's merged model, runs/<run>/merged (fine-tune with merge=true)"
        msg = f"is not a model folder (no {self.sft_dir}/config.json)"
        return Problem("sft", self.sft, msg, fix)

    def problems(self) -> list[Problem]:
        out = []
        if not Path(self.pairs.train).is_file():
            out.append(Problem("pairs.train", self.pairs.train, "no such file", "check the path"))
        elif Path(self.pairs.train).resolve() in {Path(p).resolve() for p in JUDGED_SETS}:
            fix = "use the training split, data/support_chat/train.jsonl"
            msg = "is a set the verdict is judged on; pairs from it would train on the test"
            out.append(Problem("pairs.train", self.pairs.train, msg, fix))
        return out
