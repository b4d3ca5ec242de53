import itertools
import math

import pytest

from cluster.config import ConfigError, load_config
from jobs.train.config import FinetuneConfig
from jobs.train.ds_config import deepspeed_config
from jobs.train.loop import lr_lambda
from jobs.train.progress import fmt_duration, format_progress

BASE = ["run_name=r", "model=m", "data.train=data/support_chat/train.jsonl"]


def cfg(*extra):
    return load_config(FinetuneConfig, None, [*BASE, *extra])


def test_defaults_make_a_cpu_zero2_fp32_config():
    c = cfg()
    ds = deepspeed_config(c)
    assert ds["zero_optimization"]["stage"] == 2 and ds["bf16"]["enabled"] is False
    assert ds["train_batch_size"] == 4 * 1 * 2 and "optimizer" not in ds


def test_gpu_turns_bf16_on_and_stage3_offload_is_written():
    c = cfg(
        "scaling.use_gpu=true",
        "deepspeed.zero_stage=3",
        "deepspeed.offload_params=cpu",
        "deepspeed.offload_optimizer=cpu",
        "optim.optimizer=cpu_adam",
    )
    ds = deepspeed_config(c)
    assert ds["bf16"]["enabled"] is True
    z = ds["zero_optimization"]
    assert z["offload_param"]["device"] == "cpu" and z["offload_optimizer"]["device"] == "cpu"
    assert ds["optimizer"]["type"] == "AdamW"


def test_impossible_combinations_are_all_reported():
    with pytest.raises(ConfigError) as info:
        cfg(
            "deepspeed.bf16=true",
            "deepspeed.offload_params=cpu",
            "optim.optimizer=cpu_adam",
            "scaling.accelerator_type=H100",
            "data.valid=nope.jsonl",
            "lora.enabled=false",
            "merge=true",
        )
    fields = {p.field for p in info.value.problems}
    assert fields == {
        "deepspeed.bf16",
        "deepspeed.offload_params",
        "optim.optimizer",
        "scaling.accelerator_type",
        "data.valid",
        "merge",
    }
    assert all(p.fix for p in info.value.problems)


def test_typos_in_sections_are_caught():
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        cfg("optim.lrr=0.1")


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    vals = [lr_lambda(s, 100, 10, "cosine", 0.1) for s in range(100)]
    assert vals[0] == pytest.approx(0.1) and vals[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(vals[10:]))  # decays after warm-up
    assert vals[-1] == pytest.approx(0.1, abs=1e-3)
    assert lr_lambda(50, 100, 0, "constant", 0.1) == 1.0
    assert lr_lambda(99, 100, 0, "linear", 0.0) == pytest.approx(0.01, abs=1e-9)
    assert not any(math.isnan(v) for v in vals)


def test_progress_line_has_step_loss_speed_and_eta():
    m = {
        "step": 5,
        "total_steps": 20,
        "loss": 1.23456,
        "lr": 1e-3,
        "tokens_per_s": 180.4,
        "epoch": 0.5,
        "grad_norm": 0.8,
        "eval_loss": 1.1,
    }
    line = format_progress(m, avg_step_s=6.0)
    for part in ("step 5/20", "loss 1.2346", "180 tok/s", "ETA 1m30s", "eval_loss 1.1000"):
        assert part in line
    assert fmt_duration(3725) == "1h02m"
