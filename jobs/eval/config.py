"""``EvalConfig``: the schema of ``python -m jobs.evaluate`` configs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cluster.config import FolderName, JobConfig, Problem
from cluster.llm import CPU_ENGINE_KWARGS, placement


class Candidate(BaseModel):
    """One model to evaluate: in batch on vLLM (``model`` [+ ``adapter``]) or an endpoint."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(description="label in the report, e.g. base, fine-tuned")
    model: str | None = Field(
        default=None,
        description="store name or HF folder (batch), or the served model id (endpoint)",
    )
    adapter: str | None = Field(default=None, description="LoRA adapter: runs/<run>/adapter")
    endpoint: str | None = Field(
        default=None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    api_key_env: str | None = Field(
        default=None,
        description="env var holding the endpoint's API key (never the key itself), e.g. "
        "OPENAI_API_KEY for a cloud model; when set, the variable must exist. Left out: the "
        "platform's own address gets ONPREM_API_KEY, any other endpoint no key "
        "(cluster/endpoint_keys.py)",
    )
    concurrency: int = Field(default=8, ge=1, le=256, description="endpoint requests at once")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", v):
            raise ValueError("must be letters, digits, '.', '_' or '-'. Fix: e.g. fine-tuned")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Candidate:
        if self.endpoint and self.adapter:
            raise ValueError(
                "an endpoint candidate names the served model in `model`, not an "
                "adapter. Fix: remove adapter, set model to the served id"
            )
        if not self.endpoint and not self.model:
            raise ValueError(
                "needs `model` (batch) or `endpoint`. Fix: e.g. model: smollm2-135m-instruct"
            )
        return self

    @property
    def kind(self) -> str:
        return "endpoint" if self.endpoint else "batch"


class Generation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=64, ge=1, le=4096)
    seed: int = 0


class Engine(BaseModel):
    """How batch candidates run: vLLM engines fed by Ray Data (``ray.data.llm``), one
    processor per base model; adapters of that model share its engines."""

    model_config = ConfigDict(extra="forbid")

    engine_kwargs: dict[str, Any] = Field(
        default_factory=lambda: dict(CPU_ENGINE_KWARGS),
        description="vLLM engine arguments (dtype, max_model_len, tensor_parallel_size, ...)",
    )
    replicas: int = Field(default=1, ge=1, le=256, description="vLLM engines (data parallel)")
    cpus: float = Field(default=1, gt=0, description="CPUs per engine")
    gpus: float = Field(default=0, ge=0, description="GPUs per engine (0: vLLM on CPU)")
    batch_size: int = Field(default=32, ge=1, le=4096, description="rows per batch to an engine")

    def placement(self) -> dict[str, Any]:
        tp = int(self.engine_kwargs.get("tensor_parallel_size", 1))
        return placement(self.cpus, self.gpus, tp)

    def batch_settings(self) -> dict[str, Any]:
        """What ``jobs.eval.generate.run_batch`` takes as ``engine``."""
        return {
            "engine_kwargs": self.engine_kwargs,
            "placement_group_config": self.placement(),
            "replicas": self.replicas,
            "batch_size": self.batch_size,
        }


# A share of answers, 0..1; None leaves that threshold unjudged.
Share = Annotated[float | None, Field(ge=0, le=1)]


class Thresholds(BaseModel):
    """What the fine-tune must reach to PASS; each is judged on the measured mean (its interval
    is reported beside it). Unset thresholds are not judged; a set one that the run cannot
    measure (no retention_set, no base candidate) FAILs, as it was not shown to hold."""

    model_config = ConfigDict(extra="forbid")

    facts_min: Share = Field(
        default=None,
        description="lowest fact accuracy on the held-out company questions (all held-out "
        "questions when the set has no kinds)",
    )
    wrong_facts_max: Share = Field(
        default=None,
        description="highest share of held-out answers stating a value for the asked fact that "
        "is not the reference's (e.g. $65 where the reference says $49)",
    )
    retention_drop_max: Share = Field(
        default=None,
        description="highest drop in general retention questions answered right, base minus "
        "fine-tuned (needs retention_set)",
    )
    leak_free_drop_max: Share = Field(
        default=None,
        description="highest drop in other-company answers without borrowed facts, base minus "
        "fine-tuned (needs retention_set)",
    )

    def judged(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class EvalConfig(JobConfig):
    """``python -m jobs.evaluate``: compare candidates with hand-written reference answers."""

    name: FolderName = Field(description="report folder: reports/eval/<name>/")
    eval_set: str = Field(
        description="held-out chat JSONL; the final assistant turn of each "
        "line is the reference (a hand-written answer)"
    )
    train_set: str | None = Field(
        default=None,
        description="the fine-tune's training JSONL: a held-out reference that repeats one of "
        "its assistant answers word for word is refused",
    )
    allow_verbatim_references: bool = Field(
        default=False,
        description="accept held-out references that repeat training answers (they measure "
        "recall of the training data, not generalisation)",
    )
    retention_set: str | None = Field(
        default=None,
        description="general questions (kind: general / other_company) measuring what tuning broke",
    )
    candidates: list[Candidate] = Field(min_length=1)
    generation: Generation = Generation()
    engine: Engine = Engine()
    bootstrap_samples: int = Field(default=1000, ge=100, le=100000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    worst_answers: int = Field(default=5, ge=0, le=100, description="listed per candidate")
    resume: bool = Field(default=True, description="reuse answers already generated")
    thresholds: Thresholds = Field(
        default_factory=Thresholds,
        description="the verdict: fine-tuned candidates PASS when every threshold set holds",
    )

    def problems(self) -> list[Problem]:
        out = []
        for key in ("eval_set", "retention_set", "train_set"):
            path = getattr(self, key)
            if path and not Path(path).is_file():
                out.append(
                    Problem(
                        key, path, "no such file", "give a JSONL path relative to the project root"
                    )
                )
        names = [c.name for c in self.candidates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            out.append(
                Problem(
                    "candidates", dupes, "candidate names must be unique", "rename the duplicates"
                )
            )
        return out
