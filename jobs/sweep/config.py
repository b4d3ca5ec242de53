"""``TuneConfig``: the schema of ``python -m jobs.tune`` configs, and the search space over the
fine-tune config's own fields.

A dimension names a dotted field of the fine-tune config (``optim.lr``, ``lora.r``,
``data.mix.contrast_mirror``, ``data.packing``, ...) and how to draw it::

    space:
      optim.lr: {loguniform: [1.0e-4, 3.0e-3]}
      lora.r: {choice: [8, 16, 32]}
      data.mix.contrast_mirror: {grid: [0, 1]}

Every problem (an unknown field, an empty or inverted range, a value the fine-tune refuses, a
selection set that is one the verdict judges on) is reported together before any trial starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster.chat import read_chat_jsonl
from cluster.config import ConfigError, FolderName, JobConfig, Problem, load_config
from jobs.eval.config import Engine, Thresholds
from jobs.train.config import FinetuneConfig

KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
# The sets the evaluation's verdict is judged on: a sweep never selects on them.
JUDGED_SETS = ("data/support_chat/valid.jsonl", "data/support_chat/retention.jsonl")


class Dimension(BaseModel):
    """One field's values: exactly one of choice/grid (lists) or uniform/loguniform/randint
    ([low, high], low < high)."""

    model_config = ConfigDict(extra="forbid")

    choice: list[Any] | None = None
    grid: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _one(self) -> Dimension:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"gives {', '.join(given) or 'no kind'}. Fix: exactly one of {', '.join(KINDS)}"
            )
        values = getattr(self, given[0])
        if given[0] in ("choice", "grid") and not values:
            raise ValueError(f"{given[0]} is empty. Fix: list at least one value")
        if given[0] in ("uniform", "loguniform", "randint") and not values[0] < values[1]:
            raise ValueError(
                f"{given[0]} range [{values[0]}, {values[1]}] is empty or inverted. Fix: "
                "[low, high] with low < high"
            )
        if given[0] == "loguniform" and values[0] <= 0:
            raise ValueError("loguniform needs low > 0. Fix: e.g. [1.0e-4, 3.0e-3]")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def extremes(self) -> list[Any]:
        """The values a trial may get at the ends of the range (each choice, each grid value,
        low and high): checked against the fine-tune config before any trial starts."""
        values = getattr(self, self.kind)
        if self.kind == "randint":
            return [values[0], values[1] - 1]  # Tune's randint excludes the upper bound
        return list(values)

    def tune_domain(self) -> Any:
        from ray import tune

        v = getattr(self, self.kind)
        return {
            "choice": lambda: tune.choice(v),
            "grid": lambda: tune.grid_search(v),
            "uniform": lambda: tune.uniform(*v),
            "loguniform": lambda: tune.loguniform(*v),
            "randint": lambda: tune.randint(*v),
        }[self.kind]()


class Selection(BaseModel):
    """How each trial is scored: its adapter and the base model answer the selection split
    greedily (vLLM through ray.data.llm), judged on the same four checks as the verdict."""

    model_config = ConfigDict(extra="forbid")

    eval_set: str = Field(
        default="data/support_chat/select.jsonl",
        description="selection split: company and general questions (facts, wrong values), and "
        "other-company ones; never the held-out or retention sets the verdict judges on",
    )
    thresholds: Thresholds = Field(
        default_factory=lambda: Thresholds(
            facts_min=0.8, wrong_facts_max=0.1, retention_drop_max=0.05, leak_free_drop_max=0.05
        ),
        description="the checks a trial's score measures its distance to (the verdict's)",
    )
    per_kind: int | None = Field(
        default=None,
        ge=1,
        description="score on the first N questions of each kind only (a quick sweep); "
        "default: the whole split",
    )
    max_tokens: int = Field(default=48, ge=1, le=1024)
    engine: Engine = Engine()


class EarlyStop(BaseModel):
    """Ray Tune's ASHA with one rung: at ``at_step`` every trial that trails the median of the
    trials already there (by ``metric``, which the fine-tune reports at that step) stops; the
    others run to the end and are scored. A trial stopped early has no score."""

    model_config = ConfigDict(extra="forbid")

    at_step: int = Field(ge=1, description="the rung: a step at which the fine-tune evaluates")
    metric: str = Field(default="eval_loss", description="a metric the fine-tune reports")
    mode: Literal["min", "max"] = "min"
    reduction_factor: float = Field(
        default=2, gt=1, description="keep 1 in this many trials at the rung (2: the better half)"
    )


class TuneConfig(JobConfig):
    """``python -m jobs.tune``: a Ray Tune sweep of fine-tunes, each scored on a selection
    split; the best becomes a runnable fine-tune config."""

    name: FolderName = Field(
        description="the sweep: runs/tune/<name>/ (Tune's state), reports/tune/<name>/"
    )
    finetune: str = Field(description="the fine-tune config every trial starts from (YAML)")
    trial_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="dotted fine-tune fields set for every trial but not written into the best "
        "recipe, e.g. {train.max_steps: 20} for a quick sweep",
    )
    space: dict[str, Dimension] = Field(
        min_length=1, description="dotted fine-tune field -> how to draw it"
    )
    points: list[dict[str, Any]] = Field(
        default_factory=list,
        description="trials to run first, each a value for every field of the space (Tune's "
        "points_to_evaluate: a designed set, e.g. a fractional factorial); then num_samples "
        "draws fill the rest",
    )
    num_samples: int = Field(
        default=12, ge=1, le=1000, description="trials (times each grid point), points included"
    )
    seed: int = Field(
        default=0, description="seed of the random draws (the same seed, the same trials)"
    )
    max_concurrent_trials: int | None = Field(
        default=None,
        ge=1,
        description="trials at once; default: as many as the cluster's CPUs/GPUs hold workers for",
    )
    early_stop: EarlyStop | None = Field(
        default=None, description="stop trials that trail the others at a step (ASHA)"
    )
    selection: Selection = Selection()
    restore: bool = Field(
        default=True,
        description="continue the sweep of the same name (finished trials are kept, not re-run)",
    )

    def problems(self) -> list[Problem]:
        out = []
        for key in ("finetune", "selection.eval_set"):
            path = self.finetune if key == "finetune" else self.selection.eval_set
            if not Path(path).is_file():
                out.append(Problem(key, path, "no such file", "check the path"))
        judged = {Path(p).resolve() for p in JUDGED_SETS}
        if Path(self.selection.eval_set).resolve() in judged:
            out.append(
                Problem(
                    "selection.eval_set",
                    self.selection.eval_set,
                    "is a set the evaluation's verdict is judged on; selecting on it would "
                    "tune to the test",
                    "use the selection split, data/support_chat/select.jsonl",
                )
            )
        if out:
            return out
        out += heldout_overlap(self.selection.eval_set)
        return out + trial_problems(self)


def heldout_overlap(path: str) -> list[Problem]:
    """Selection questions that are also questions of the judged sets (after normalising)."""

    def users(p: str) -> set[str]:
        return {
            " ".join(m["content"].lower().split())
            for ex in read_chat_jsonl(p, need_assistant=False)
            for m in ex.messages
            if m["role"] == "user"
        }

    judged = set().union(*(users(p) for p in JUDGED_SETS if Path(p).is_file()))
    shared = sorted(users(path) & judged)
    if not shared:
        return []
    return [
        Problem(
            "selection.eval_set",
            path,
            f"{len(shared)} questions are also in the judged sets (e.g. {shared[0]!r})",
            "remove them: the selection split must be disjoint from valid and retention",
        )
    ]


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def trial_config(cfg: TuneConfig, params: dict[str, Any], run_name: str) -> FinetuneConfig:
    """The fine-tune config of one trial: the base file, the trial overrides, the trial's
    parameters, its own run name (ConfigError naming the field otherwise)."""
    overrides = [f"{k}={_yaml(v)}" for k, v in {**cfg.trial_overrides, **params}.items()]
    return load_config(FinetuneConfig, cfg.finetune, [*overrides, f"run_name={run_name}"])


def recipe(cfg: TuneConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The base fine-tune config with a trial's parameters: what the best trial ships as."""
    import yaml

    data = yaml.safe_load(Path(cfg.finetune).read_text())
    for key, value in params.items():
        set_dotted(data, key, value)
    FinetuneConfig.model_validate(data)
    return data


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value)  # JSON is YAML: lists, numbers, strings and bools survive


def trial_problems(cfg: TuneConfig) -> list[Problem]:
    """Each dimension's extreme values applied to the fine-tune config: an unknown field or a
    value it refuses is named here, with the fix, before any trial starts."""
    out = []
    for i, point in enumerate(cfg.points):
        if set(point) != set(cfg.space):
            out.append(
                Problem(
                    f"points.{i}",
                    point,
                    "must give a value for every field of the space, and only those",
                    f"give exactly: {', '.join(sorted(cfg.space))}",
                )
            )
            continue
        try:
            trial_config(cfg, point, "check")
        except ConfigError as err:
            out += [
                Problem(f"points.{i}.{p.field}", p.value, p.message, p.fix) for p in err.problems
            ]
    if len(cfg.points) > cfg.num_samples:
        out.append(
            Problem(
                "num_samples",
                cfg.num_samples,
                f"is smaller than the {len(cfg.points)} points to run first",
                f"num_samples >= {len(cfg.points)}",
            )
        )
    base = load_config(FinetuneConfig, cfg.finetune)
    kinds = {ex.metadata.get("kind") for ex in read_chat_jsonl(base.data.train)}
    for key, dim in cfg.space.items():
        kind = key.removeprefix("data.mix.")
        if key.startswith("data.mix.") and kind not in kinds:
            known = ", ".join(sorted(k for k in kinds if k))
            out.append(
                Problem(
                    f"space.{key}",
                    kind,
                    f"no training example of {base.data.train} has metadata.kind {kind!r}",
                    f"weigh one of its kinds: {known}",
                )
            )
            continue
        for value in dim.extremes():
            try:
                trial_config(cfg, {key: value}, "check")
            except ConfigError as err:
                for p in err.problems:
                    out.append(Problem(f"space.{key}", value, p.render()))
                break
    if not out:
        try:
            trial = trial_config(cfg, {}, "check")
        except ConfigError as err:
            return [
                Problem(f"trial_overrides.{p.field}", p.value, p.message, p.fix)
                for p in err.problems
            ]
        out += early_stop_problems(cfg.early_stop, trial)
    return out


def early_stop_problems(stop: EarlyStop | None, trial: FinetuneConfig) -> list[Problem]:
    """The rung must fall before the last step, on a step where the metric is reported."""
    if stop is None:
        return []
    steps, every = trial.train.max_steps, trial.train.eval_every
    if steps is not None and stop.at_step >= steps:
        fix = f"a step before the last (train.max_steps is {steps}), e.g. {steps // 2}"
        return [Problem("early_stop.at_step", stop.at_step, "is not before the last step", fix)]
    if stop.metric.startswith("eval_") and (not every or stop.at_step % every):
        return [
            Problem(
                "early_stop.at_step",
                stop.at_step,
                f"is not a step where the fine-tune evaluates (train.eval_every: {every})",
                f"set trial_overrides train.eval_every: {stop.at_step}",
            )
        ]
    return []
