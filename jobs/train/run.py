"""Driver side of a fine-tune: check everything before any work (model, data, run folder),
run Ray Train's ``TorchTrainer``, then write the run's outputs atomically.

``runs/<run_name>/`` ends up with ``adapter/`` (or ``model/`` for full fine-tuning), ``merged/``
when asked, ``metrics.jsonl``, ``ds_config.json``, ``config.yaml`` and ``result.json``; Ray
Train's checkpoints live beside them (or under ``checkpoint.storage_path``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster import paths
from cluster.atomic import replacing, write_text
from cluster.chat import ChatFormatError
from cluster.ledger import Allocation
from cluster.store import ModelStore, StoreError
from cluster.usage import cluster_gpu_type, node_accelerator_type, workers_held
from jobs.train.config import FinetuneConfig
from jobs.train.data import (
    Schedule,
    repeated_references,
    report,
    tokenized_dataset,
    units_dataset,
)

log = logging.getLogger(__name__)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "tokenizer.model",
)


class PreflightError(ValueError):
    """Everything wrong with a fine-tune's inputs, found before any work starts."""


@dataclass
class Preflight:
    model_dir: Path
    run_dir: Path
    storage_root: str
    stats: dict[str, dict[str, float]]
    resuming: bool
    train: Any  # ray.data.Dataset of training units (materialized), never collected here
    valid: Any | None  # the validation examples, one per unit


def run_dir_for(cfg: FinetuneConfig) -> Path:
    return paths.runs_dir() / cfg.run_name


def _checkpoints(storage_root: str, run_name: str) -> list[Path]:
    if "://" in storage_root:
        return []
    return sorted((Path(storage_root) / run_name).glob("checkpoint_*"))


def preflight(cfg: FinetuneConfig, store: ModelStore | None = None) -> Preflight:
    """Resolve the model, decide fresh run / resume / refuse, and check both data files line
    by line with Ray Data (read, checked and tokenized in Ray tasks; only the report reaches
    this process) — raising one PreflightError with every problem."""
    from transformers import AutoConfig, AutoTokenizer

    problems: list[str] = []
    try:
        model_dir = (store or ModelStore()).resolve(cfg.model)
    except StoreError as exc:
        raise PreflightError(f"model: {exc}") from None
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.chat_template:
        problems.append(f"model {cfg.model!r} has no chat template; add chat_template.jinja")
    max_pos = getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", None)
    if max_pos and cfg.data.max_seq_len > max_pos:
        problems.append(
            f"data.max_seq_len={cfg.data.max_seq_len} is longer than the model's "
            f"context ({max_pos}); lower it"
        )
    run_dir = run_dir_for(cfg)
    storage_root = cfg.checkpoint.storage_path or str(paths.runs_dir())
    finished = (run_dir / "result.json").is_file()
    ckpts = _checkpoints(storage_root, cfg.run_name)
    if finished and not cfg.overwrite:
        problems.append(
            f"run_name {cfg.run_name!r} already finished ({run_dir}/result.json). "
            "Fix: choose another run_name, or overwrite=true to replace it"
        )
    elif ckpts and not finished and not cfg.resume and not cfg.overwrite:
        problems.append(
            f"run_name {cfg.run_name!r} has checkpoints from a stopped run. Fix: "
            "resume=true to continue it, or overwrite=true to start again"
        )
    stats: dict[str, dict[str, float]] = {}
    checked: dict[str, Any] = {}
    # Absolute, resolved against the driver's directory, before Ray Data's read tasks run
    # elsewhere. (The CI failure this was first written for came from the multi-node test
    # fleet sharing one runtime-env folder between nodes, fixed there.)
    given = {k: p for k in ("train", "valid") if (p := getattr(cfg.data, k))}
    absolute = {k: str(Path(p).absolute()) for k, p in given.items()}
    for key, path in given.items():
        if not Path(absolute[key]).is_file():
            problems.append(
                f"data.{key}: {ChatFormatError(path, [(0, 'file not found; check the path')], 0)}"
            )
            continue
        tokenized = tokenized_dataset(absolute[key], str(model_dir), cfg.data.max_seq_len)
        stats[key], errors, lines = report(tokenized)
        bad_format = [(e["line"], e["error"]) for e in errors if e["error_kind"] == "format"]
        if bad_format:
            problems.append(f"data.{key}: {ChatFormatError(path, bad_format, lines)}")
        elif lines == 0:
            problems.append(
                f"data.{key}: {ChatFormatError(path, [(0, 'the file has no examples')], 0)}"
            )
        problems += [
            f"data.{key} {path} line {e['line']}: {e['error']}"
            for e in errors
            if e["error_kind"] == "fit"
        ]
        checked[key] = tokenized
    if "train" in checked and cfg.data.mix:
        kinds = set(stats["train"]["kinds"])
        problems += [
            f"data.mix: no training example has metadata.kind {k!r} (kinds: "
            f"{', '.join(sorted(kinds))})"
            for k in cfg.data.mix
            if k not in kinds
        ]
    if "train" in checked and "valid" in checked and not problems:
        # Reported, not refused: the eval loss may use any set; the evaluation job refuses one.
        stats["valid"]["references_repeating_train"] = repeated_references(
            checked["train"], checked["valid"]
        )
    train = valid = None
    if not problems and "train" in checked:
        train = units_dataset(
            checked["train"],
            packing=cfg.data.packing,
            max_seq_len=cfg.data.max_seq_len,
            mix=cfg.data.mix,
            seed=cfg.train.seed,
        )
        stats["train"]["units"] = train.count()
        schedule = Schedule(
            int(stats["train"]["units"]),
            cfg.train.micro_batch_size,
            cfg.train.grad_accum,
            cfg.scaling.num_workers,
            cfg.train.seed,
        )
        if schedule.steps_per_epoch == 0:
            problems.append(
                f"data.train: {stats['train']['units']} training units (after packing) are fewer "
                f"than one global batch ({schedule.global_batch} = train.micro_batch_size x "
                "train.grad_accum x scaling.num_workers). Fix: add data, or lower those"
            )
        if "valid" in checked:
            valid = units_dataset(
                checked["valid"], packing=False, max_seq_len=cfg.data.max_seq_len, mix={}, seed=0
            )
    if problems:
        raise PreflightError("the fine-tune cannot start:\n  - " + "\n  - ".join(problems))
    return Preflight(
        model_dir,
        run_dir,
        storage_root,
        stats,
        resuming=bool(ckpts) and not cfg.overwrite,
        train=train,
        valid=valid,
    )


def capacity(cfg: FinetuneConfig, total: dict[str, float], free: dict[str, float]) -> str | None:
    """Check the worker group against the cluster: raise PreflightError when the cluster can
    never hold it; return a warning when it must wait for busy resources (Serve replicas,
    another job), so a run that waits says why instead of sitting silent."""
    sc = cfg.scaling
    need = {"CPU": sc.num_workers * sc.cpus_per_worker}
    if sc.use_gpu:
        need["GPU"] = sc.num_workers * sc.gpus_per_worker
    short = [r for r, n in need.items() if total.get(r, 0) < n]
    if short:
        have = ", ".join(f"{total.get(r, 0):g} {r}" for r in need)
        raise PreflightError(
            f"the fine-tune cannot start:\n  - scaling: {sc.num_workers} workers need "
            + ", ".join(f"{n:g} {r}" for r, n in need.items())
            + f" but the whole cluster has {have}. Fix: lower scaling.num_workers or "
            "scaling.cpus_per_worker/gpus_per_worker, or add nodes first"
        )
    busy = [r for r, n in need.items() if free.get(r, 0) < n]
    if not busy:
        return None
    return (
        "waiting for resources: the workers need "
        + ", ".join(f"{need[r]:g} {r}" for r in busy)
        + ", free now "
        + ", ".join(f"{free.get(r, 0):g} of {total.get(r, 0):g} {r}" for r in busy)
        + ". The run starts when they are released (python -m cluster status shows the jobs; "
        "python -m serve scale sets Serve replicas)"
    )


def cluster_capacity(cfg: FinetuneConfig) -> str | None:
    """``capacity`` against the Ray cluster this job runs on (connecting if needed)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    return capacity(cfg, ray.cluster_resources(), ray.available_resources())


def describe_stats(stats: dict[str, dict[str, float]]) -> str:
    lines = []
    for key, s in stats.items():
        lines.append(
            f"{key}: {s['examples']} conversations, {s['tokens']} tokens "
            f"({s['trained_tokens']} in assistant turns, trained on), per example "
            f"mean {s['mean']:.0f} / p50 {s['p50']:.0f} / p95 {s['p95']:.0f} / "
            f"max {s['max']}"
        )
        if "units" in s:
            lines.append(
                f"{key}: {s['units']} training units per epoch (after the data mixture and "
                "packing), fed to the workers by Ray Data"
            )
        if "references_repeating_train" in s:
            lines.append(
                f"{key}: {s['references_repeating_train']} of {s['examples']} references (final "
                "assistant turns) repeat a training answer word for word"
            )
    return "\n".join(lines)


def make_trainer(
    cfg: FinetuneConfig,
    pre: Preflight,
    ds_config: dict[str, Any],
    callbacks: Sequence[Any] = (),
) -> Any:
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from jobs.train.loop import train_loop_per_worker
    from jobs.train.progress import Progress

    sc = cfg.scaling
    resources = {"CPU": sc.cpus_per_worker}
    if sc.use_gpu:
        resources["GPU"] = sc.gpus_per_worker
    scaling = ScalingConfig(
        num_workers=sc.num_workers,
        use_gpu=sc.use_gpu,
        resources_per_worker=resources,
        accelerator_type=sc.accelerator_type,
        placement_strategy=sc.placement,
    )
    run = RunConfig(
        name=cfg.run_name,
        storage_path=pre.storage_root,
        failure_config=FailureConfig(max_failures=cfg.checkpoint.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.num_to_keep),
        callbacks=[Progress(str(pre.run_dir / "metrics.jsonl")), *callbacks],
    )
    # Only sizes travel in the config; the data reaches the workers through Ray Data. Every
    # worker reads the units in file order and keeps its share (``data.rank_units``): Ray's own
    # streaming split hands blocks to whichever worker asks first, which no resume can replay.
    loop_config = {
        "cfg": cfg.model_dump(mode="json"),
        "ds_config": ds_config,
        "model_dir": str(pre.model_dir),
        "n_units": int(pre.stats["train"]["units"]),
        "has_valid": pre.valid is not None,
    }
    datasets = {"train": pre.train}
    if pre.valid is not None:
        datasets["valid"] = pre.valid
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=scaling,
        run_config=run,
        torch_config=TorchConfig(backend="nccl" if cfg.cuda else "gloo"),
        datasets=datasets,
        dataset_config=DataConfig(
            datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True)
        ),
    )


def write_outputs(cfg: FinetuneConfig, pre: Preflight, result: Any, wall_s: float) -> dict:
    """Copy the final adapter/model out of the last checkpoint, merge if asked, write
    result.json. Each output appears whole or not at all."""
    summary = dict(result.metrics.get("summary") or {})
    kind = "adapter" if cfg.lora.enabled else "model"
    with result.checkpoint.as_directory() as ckpt, replacing(pre.run_dir / kind) as tmp:
        shutil.copytree(Path(ckpt) / kind, tmp)
        for name in TOKENIZER_FILES:
            if (pre.model_dir / name).is_file():
                shutil.copy(pre.model_dir / name, tmp / name)
    if cfg.merge:
        with replacing(pre.run_dir / "merged") as tmp:
            tmp.mkdir()
            merge_adapter(pre.model_dir, pre.run_dir / "adapter", tmp)
    summary.update(
        run_name=cfg.run_name,
        model=cfg.model,
        model_dir=str(pre.model_dir),
        device="cuda" if cfg.cuda else "cpu",
        wall_s=round(wall_s, 1),
        checkpoint=result.checkpoint.path,
        outputs=sorted(
            p.name for p in pre.run_dir.iterdir() if p.name in ("adapter", "model", "merged")
        ),
        data=pre.stats,
    )
    summary.update(usage_by_accelerator(cfg, summary, wall_s))
    if cfg.cuda and summary.get("placement"):
        from cluster.store.store import describe_hf_folder
        from jobs.train.flops import mfu

        params = int(describe_hf_folder(pre.model_dir)["parameters"] or 0)
        gpu_model = summary["placement"][0]["accelerator_type"]
        gpus = int(cfg.scaling.gpus_per_worker * cfg.scaling.num_workers)
        summary["mfu"] = mfu(params, cfg.lora.enabled, summary["tokens_per_s"], gpu_model, gpus)
    write_text(pre.run_dir / "result.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def merge_adapter(base_dir: Path, adapter_dir: Path, out: Path) -> None:
    """Fold the LoRA weights into the base model and save a plain HF model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out)


def requested(cfg: FinetuneConfig) -> list[Allocation]:
    """What Ray reserves for the worker group (workers x resources per worker), declared before
    training so a run that fails or is stopped before it reports its placement is charged it."""
    sc = cfg.scaling
    if sc.use_gpu:
        accel = sc.accelerator_type or cluster_gpu_type() or "GPU"
        return [workers_held(accel, sc.num_workers, sc.cpus_per_worker, sc.gpus_per_worker)]
    return [workers_held(node_accelerator_type(), sc.num_workers, sc.cpus_per_worker, 0.0)]


def allocations(cfg: FinetuneConfig, placement: list[dict[str, Any]]) -> list[Allocation]:
    """What the workers held, per accelerator type (GPUs and CPUs per worker, distinct
    nodes)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for p in placement or []:
        by_type.setdefault(p["accelerator_type"], []).append(p)
    gpus = cfg.scaling.gpus_per_worker if cfg.scaling.use_gpu else 0.0
    return [
        Allocation(
            accel,
            gpus=gpus * len(ws),
            cpus=cfg.scaling.cpus_per_worker * len(ws),
            nodes=float(len({w["node_id"] for w in ws})),
        )
        for accel, ws in by_type.items()
    ]


def usage_by_accelerator(
    cfg: FinetuneConfig, summary: dict[str, Any], wall_s: float
) -> dict[str, Any]:
    hours = wall_s / 3600.0
    out = {}
    for a in allocations(cfg, summary.get("placement") or []):
        out[a.accelerator_type] = {
            "gpus": a.gpus,
            "cpus": a.cpus,
            "nodes": a.nodes,
            "gpu_hours": a.gpus * hours,
            "node_hours": a.nodes * hours,
        }
    return {"usage": out}


def save_run_inputs(cfg: FinetuneConfig, pre: Preflight, ds_config: dict[str, Any]) -> None:
    pre.run_dir.mkdir(parents=True, exist_ok=True)
    write_text(pre.run_dir / "ds_config.json", json.dumps(ds_config, indent=2) + "\n")
    write_text(
        pre.run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    )


def register(cfg: FinetuneConfig, pre: Preflight, store: ModelStore | None = None) -> str:
    """Add the fine-tuned model to the store: merged/ (or the full model) as a plain HF model,
    else the adapter with its base recorded."""
    from cluster.store.manifest import Manifest, file_entries
    from cluster.store.store import describe_hf_folder

    store = store or ModelStore()
    name = cfg.run_name.lower()
    src = next(
        p
        for p in (pre.run_dir / "merged", pre.run_dir / "model", pre.run_dir / "adapter")
        if p.is_dir()
    )

    def build(tmp: Path) -> Manifest:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        info = describe_hf_folder(tmp) if (tmp / "config.json").is_file() else {}
        return Manifest(
            name=name,
            source=f"run:{pre.run_dir}",
            source_kind="run",
            revision=str(int(time.time())),
            fingerprint=f"run:{cfg.run_name}",
            format="peft-lora" if src.name == "adapter" else "hf-safetensors",
            base_model=cfg.model,
            files=file_entries(tmp),
            **info,
        )

    store.install(name, build)
    return name
