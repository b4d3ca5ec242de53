"""The fine-tune's data path on a real Ray cluster: Ray Data checks and tokenizes the JSONL
(only the report reaches the driver), and every worker's share of each epoch comes in an order
that a resumed run, or a new job on the same file, replays exactly."""

import json
from pathlib import Path

import pytest

from jobs.train.config import FinetuneConfig
from jobs.train.data import Schedule, rank_units
from jobs.train.run import describe_stats, preflight

pytestmark = pytest.mark.integration
TRAIN = "data/support_chat/train.jsonl"


def train_lines():
    return [x for x in Path(TRAIN).read_text().splitlines() if x.strip()]


def config(model_dir, **data):
    return FinetuneConfig.model_validate(
        {
            "run_name": "feed",
            "model": str(model_dir),
            "data": {"train": TRAIN, "max_seq_len": 256, "packing": True, **data},
            "train": {"micro_batch_size": 2, "grad_accum": 2},
            "scaling": {"num_workers": 2},
        }
    )


def step_ids(pre, cfg, rank, start, total):
    schedule = Schedule(int(pre.stats["train"]["units"]), 2, 2, 2, cfg.train.seed)
    steps = schedule.step_batches(
        lambda epoch: rank_units(pre.train.iter_batches, rank, 2, cfg.train.seed, epoch),
        start,
        total,
    )
    return [[u["first_line"] for mb in step for u in mb] for step in steps]


def test_workers_get_disjoint_shards_in_an_order_a_resume_replays(
    ray_cluster, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("ONPREM_ROOT", str(tmp_path))
    cfg = config(tiny_model_dir)
    pre = preflight(cfg)
    lines = len(train_lines())
    s = pre.stats["train"]
    assert s["examples"] == lines and 0 < s["units"] < lines / 2
    assert s["trained_tokens"] < s["tokens"] and s["p50"] <= s["p95"] <= s["max"] <= 256
    assert "training units per epoch" in describe_stats(pre.stats)
    spe = Schedule(s["units"], 2, 2, 2, cfg.train.seed).steps_per_epoch
    whole = {r: step_ids(pre, cfg, r, 0, spe + 3) for r in range(2)}
    epoch0 = [u for r in range(2) for st in whole[r][:spe] for u in st]
    assert len(epoch0) == len(set(epoch0)) == spe * 8  # no unit twice in an epoch
    assert whole[0][spe:] != whole[0][:3]  # a new epoch, a new order
    for start in (2, spe - 1, spe + 1):
        assert step_ids(pre, cfg, 0, start, spe + 3) == whole[0][start:]
    again = preflight(cfg)  # a new job on the same file
    assert step_ids(again, cfg, 1, 0, spe + 3) == whole[1]


def test_the_data_mixture_repeats_kinds(ray_cluster, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ONPREM_ROOT", str(tmp_path))
    plain = preflight(config(tiny_model_dir, packing=False))
    kinds = {json.loads(x).get("metadata", {}).get("kind") for x in train_lines()}
    kind = sorted(k for k in kinds if k)[0]
    n_kind = sum(1 for x in train_lines() if json.loads(x).get("metadata", {}).get("kind") == kind)
    mixed = preflight(config(tiny_model_dir, packing=False, mix={kind: 2.0}))
    assert mixed.stats["train"]["units"] == plain.stats["train"]["units"] + n_kind
    with pytest.raises(Exception, match="no training example has metadata.kind 'nope'"):
        preflight(config(tiny_model_dir, mix={"nope": 2.0}))
