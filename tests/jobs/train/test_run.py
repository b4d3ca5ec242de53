"""The fine-tune's data check (``jobs.train.run.preflight``, run by Ray Data) on a tiny model."""

import json

import pytest

from jobs.train.config import FinetuneConfig
from jobs.train.run import describe_stats, preflight

pytestmark = pytest.mark.integration


def write_chat(path, pairs):
    path.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            )
            + "\n"
            for q, a in pairs
        )
    )
    return str(path)


def test_the_data_check_counts_valid_references_that_repeat_training_answers(
    ray_cluster, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("ONPREM_ROOT", str(tmp_path))
    train = write_chat(
        tmp_path / "train.jsonl",
        [("Return window?", "Returns are accepted for 45 days."), ("Phone?", "Call 555-0147.")],
    )
    valid = write_chat(
        tmp_path / "valid.jsonl",
        [
            ("How long to return it?", "returns are accepted for 45  days."),
            ("Number to call?", "Our line is 555-0147."),
        ],
    )
    cfg = FinetuneConfig.model_validate(
        {
            "run_name": "check",
            "model": str(tiny_model_dir),
            "data": {"train": train, "valid": valid, "max_seq_len": 128},
            "train": {"micro_batch_size": 1},
            "scaling": {"num_workers": 1},
        }
    )
    pre = preflight(cfg)
    assert pre.stats["valid"]["references_repeating_train"] == 1
    assert "valid: 1 of 2 references (final assistant turns) repeat a training answer" in (
        describe_stats(pre.stats)
    )
