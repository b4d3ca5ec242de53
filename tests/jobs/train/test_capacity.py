"""The fine-tune's capacity check against cluster resources (no Ray needed)."""

import pytest

from jobs.train.config import FinetuneConfig
from jobs.train.run import PreflightError, capacity


def cfg(**scaling):
    return FinetuneConfig.model_validate(
        {"run_name": "r", "model": "m", "data": {"train": "t.jsonl"}, "scaling": scaling}
    )


def test_a_cluster_that_can_never_hold_the_workers_is_refused_with_the_numbers():
    with pytest.raises(PreflightError) as err:
        capacity(cfg(num_workers=4, cpus_per_worker=1), {"CPU": 2.0}, {"CPU": 2.0})
    msg = str(err.value)
    assert "4 workers need 4 CPU but the whole cluster has 2 CPU" in msg
    assert "scaling.num_workers" in msg
    with pytest.raises(
        PreflightError, match="need 2 CPU, 2 GPU but the whole cluster has 8 CPU, 0"
    ):
        capacity(cfg(num_workers=2, use_gpu=True), {"CPU": 8.0}, {"CPU": 8.0})


def test_busy_resources_give_a_waiting_notice_and_free_ones_none():
    assert capacity(cfg(num_workers=2), {"CPU": 2.0}, {"CPU": 2.0}) is None
    note = capacity(cfg(num_workers=2), {"CPU": 2.0}, {"CPU": 1.0})
    assert note is not None and "need 2 CPU, free now 1 of 2 CPU" in note
    assert "serve scale" in note
