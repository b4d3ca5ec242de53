"""``BenchConfig``: the schema of ``python -m jobs.bench_serve``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from cluster.config import JobConfig, Problem


class BenchConfig(JobConfig):
    """``python -m jobs.bench_serve``: load an OpenAI-compatible endpoint."""

    url: str = Field(default="http://127.0.0.1:8000/v1", description="base URL of the API")
    model: str = Field(default="smollm2-support", description="model id to request")
    concurrency: list[int] = Field(
        default_factory=lambda: [1, 4, 16], description="concurrency levels, e.g. 1,4,16"
    )
    requests: int = Field(
        default=32,
        ge=1,
        description="requests per concurrency level (at least per_user per concurrent user)",
    )
    per_user: int = Field(
        default=6,
        ge=1,
        description="at least this many requests per concurrent user, so that a level is "
        "measured mostly at its concurrency rather than in its ramp-up and tail (3 per user "
        "measured 3.5x at 16 users vs 1, 6 per user 4.2x, same engine, in-process)",
    )
    prompts: str = Field(
        default="data/support_chat/valid.jsonl",
        description="chat JSONL (the eval set) or a text file with one prompt per line",
    )
    max_tokens: int = Field(default=64, ge=1, le=4096)
    warmup: int = Field(default=2, ge=0, description="unmeasured requests before each level")
    watch_replicas: bool = Field(
        default=False,
        description="record the replica count over time (needs the local cluster's dashboard)",
    )
    app: str = Field(default="llm", description="Serve app to watch")
    cooldown_s: float = Field(
        default=0,
        ge=0,
        description="with watch_replicas: keep watching "
        "this long after the load, to see scale-down",
    )
    api_key_env: str | None = Field(
        default=None,
        description="env var holding the endpoint's API key (never the key itself); when set, "
        "the variable must exist. Left out: the platform's own address gets ONPREM_API_KEY, "
        "any other URL no key (cluster/endpoint_keys.py)",
    )
    timeout_s: float = Field(default=600, gt=0)
    name: str | None = Field(default=None, description="report folder name (default: time)")

    @field_validator("concurrency", mode="before")
    @classmethod
    def _csv(cls, v: object) -> object:
        if isinstance(v, str):
            return [int(x) for x in v.split(",") if x.strip()]
        if isinstance(v, int):
            return [v]
        return v

    def problems(self) -> list[Problem]:
        out = []
        if not Path(self.prompts).is_file():
            out.append(
                Problem(
                    "prompts",
                    self.prompts,
                    "no such file",
                    "give a chat JSONL or a text file with one prompt per line",
                )
            )
        if any(c < 1 for c in self.concurrency):
            out.append(
                Problem(
                    "concurrency",
                    self.concurrency,
                    "levels must be >= 1",
                    "e.g. --concurrency 1,4,16",
                )
            )
        return out
