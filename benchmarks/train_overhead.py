"""Ray Train + DeepSpeed (1 worker) vs a plain PyTorch loop: tokens/s side by side.

    .venv/bin/python -m cluster up
    .venv/bin/python benchmarks/train_overhead.py --steps 12

Both train the same LoRA on the same model with the same packed batches (the job's own data
pipeline) and the same thread count; the first ``--warmup`` steps of each are not timed. The
Ray Train side runs the real job code (``make_trainer``) with one worker holding every CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def plain_loop(cfg, pre, steps: int, warmup: int, threads: int) -> float:
    import torch

    from jobs.train.data import Schedule, collate, rank_units
    from jobs.train.loop import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, str(pre.model_dir))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr)
    schedule = Schedule(
        int(pre.stats["train"]["units"]), cfg.train.micro_batch_size, 1, 1, cfg.train.seed
    )
    batches = schedule.step_batches(
        lambda epoch: rank_units(pre.train.iter_batches, 0, 1, cfg.train.seed, epoch), 0, steps
    )
    tokens, seconds = 0, 0.0
    for step, (units,) in enumerate(batches):
        t0 = time.perf_counter()
        batch = collate(units, 0)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
        opt.step()
        opt.zero_grad()
        if step >= warmup:
            seconds += time.perf_counter() - t0
            tokens += sum(len(u["input_ids"]) for u in units)
    return tokens / seconds


def ray_train(cfg, pre, warmup: int) -> float:
    from jobs.train.ds_config import deepspeed_config
    from jobs.train.run import make_trainer, save_run_inputs

    ds = deepspeed_config(cfg)
    save_run_inputs(cfg, pre, ds)
    result = make_trainer(cfg, pre, ds).fit()
    if result.error:
        raise RuntimeError(result.error)
    rows = [json.loads(x) for x in (pre.run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in rows if r["step"] > warmup]
    tokens = sum(r["tokens_per_s"] * r["step_time_s"] for r in timed)
    return tokens / sum(r["step_time_s"] for r in timed)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--config", default="jobs/configs/finetune/smollm2_lora.yaml")
    a = p.parse_args()
    os.chdir(REPO)
    from cluster.config import load_config
    from jobs.train.config import FinetuneConfig
    from jobs.train.run import preflight

    run_name = f"bench-train-{int(time.time())}"
    cfg = load_config(
        FinetuneConfig,
        a.config,
        [
            f"run_name={run_name}",
            f"train.max_steps={a.steps}",
            "train.grad_accum=1",
            "data.packing=true",
            "data.valid=null",
            "scaling.num_workers=1",
            f"scaling.cpus_per_worker={a.threads}",
            f"checkpoint.every_steps={a.steps}",
            "merge=false",
            "train.log_every=1",
        ],
    )
    pre = preflight(cfg)
    plain = plain_loop(cfg, pre, a.steps, a.warmup, a.threads)
    print(f"plain PyTorch loop:            {plain:7.1f} tokens/s", flush=True)
    ray = ray_train(cfg, pre, a.warmup)
    print(f"Ray Train + DeepSpeed ZeRO-{cfg.deepspeed.zero_stage}: {ray:7.1f} tokens/s")
    ratio = ray / plain
    print(f"ratio (Ray Train / plain):     {ratio:7.2f}x  (target >= 0.90)")
    out = REPO / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_overhead.json").write_text(
        json.dumps(
            {
                "plain_tokens_per_s": plain,
                "ray_train_tokens_per_s": ray,
                "ratio": ratio,
                "steps": a.steps,
                "warmup": a.warmup,
                "threads": a.threads,
                "micro_batch_size": cfg.train.micro_batch_size,
                "max_seq_len": cfg.data.max_seq_len,
                "zero_stage": cfg.deepspeed.zero_stage,
                "time": time.time(),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
