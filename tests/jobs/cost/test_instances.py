"""The cheapest instance that holds a replica, on a table of shapes (shipped snapshot,
us-east-1), as SkyPilot's optimizer picks: same GPU, enough memory, one instance, NVSwitch above
4 GPUs; and the errors when no instance can hold a replica or a pinned one is not sold."""

import pytest

from jobs.cost.instances import (
    EquivalenceError,
    Shape,
    cheapest_instance,
    check_models,
    unit_on_demand,
)
from jobs.cost.prices import load_price_book
from tests.jobs.cost.samples import SNAPSHOT

BOOK = load_price_book(SNAPSHOT, "snapshot")


@pytest.mark.parametrize(
    ("gpu", "gpus", "memory_gb", "instance", "per_instance", "per_replica"),
    [
        # one L40S: g6e.xlarge $1.861 beats a quarter of g6e.12xlarge ($10.49264 / 4 = $2.62)
        ("L40S", 1, 48, "g6e.xlarge", 1, 1.861),
        ("L40S", 2, 48, "g6e.12xlarge", 2, 10.49264 / 2),  # the only one with 2+ L40S
        ("L40S", 4, 48, "g6e.12xlarge", 1, 10.49264),
        ("H100", 8, 80, "p5.48xlarge", 1, 55.04),  # tensor parallel 8 on NVSwitch
        ("H100", 1, 80, "p5.48xlarge", 8, 55.04 / 8),  # 8 one-GPU replicas per instance
        ("H200", 8, 141, "p5en.48xlarge", 1, 63.296),
        ("A100-80GB", 8, 80, "p4de.24xlarge", 1, 27.44705),
        ("A100-40GB", 4, 40, "p4d.24xlarge", 2, 21.957642 / 2),  # 40 GB A100s: not p4de
        ("A10G", 1, 24, "g5.xlarge", 1, 1.006),  # not 1/8 of g5.48xlarge ($2.04)
        ("A10G", 4, 24, "g5.48xlarge", 2, 16.288 / 2),
        ("L4", 1, 24, "g6.xlarge", 1, 0.8048),
        ("T4", 1, 16, "g4dn.xlarge", 1, 0.526),
    ],
)
def test_the_cheapest_instance_per_replica(
    gpu, gpus, memory_gb, instance, per_instance, per_replica
):
    pick = cheapest_instance(Shape(gpu, gpus, memory_gb), BOOK, "us-east-1")
    assert (pick.instance_type, pick.replicas_per_instance) == (instance, per_instance)
    assert pick.on_demand / pick.replicas_per_instance == pytest.approx(per_replica)
    assert instance in pick.why and "cheapest on-demand per replica" in pick.why


@pytest.mark.parametrize(
    ("gpu", "gpus", "memory_gb", "why"),
    [
        ("A10G", 8, 24, "NVSwitch"),  # g5.48xlarge has 8 A10G, but on PCIe
        ("L40S", 8, 48, "no instance"),  # no 8 x L40S instance in the snapshot
        ("H100", 16, 80, "no instance"),  # tensor parallelism does not span instances
        ("L4", 1, 48, "no instance"),  # an L4 has 24 GB
    ],
)
def test_a_replica_no_instance_can_hold_is_refused_with_the_fix(gpu, gpus, memory_gb, why):
    with pytest.raises(EquivalenceError) as err:
        cheapest_instance(Shape(gpu, gpus, memory_gb), BOOK, "us-east-1")
    problem = err.value.problems[0]
    assert problem.field == f"scenarios: replica of {gpus} x {gpu}"
    assert "no instance in the prices can hold this replica" in problem.message
    assert why in problem.message + problem.fix and "use fewer GPUs per replica" in problem.fix


def test_a_pinned_instance_wins_and_an_instance_aws_does_not_sell_is_refused():
    pick = cheapest_instance(Shape("L40S", 1, 48), BOOK, "us-east-1", {"L40S": "g6e.12xlarge"})
    assert pick.instance_type == "g6e.12xlarge" and pick.replicas_per_instance == 4
    assert pick.why.startswith("pinned by equivalence")
    with pytest.raises(EquivalenceError) as err:
        cheapest_instance(Shape("L40S", 1, 48), BOOK, "us-east-1", {"L40S": "g6e.96xlarge"})
    p = err.value.problems[0]
    assert (p.field, p.value) == ("equivalence.L40S", "g6e.96xlarge")
    assert "is not an instance AWS sells in us-east-1" in p.message
    assert "g6e.12xlarge, g6e.xlarge" in p.fix
    # pinned to an instance that cannot hold the replica
    with pytest.raises(EquivalenceError, match="no instance in the prices can hold"):
        cheapest_instance(Shape("L40S", 4, 48), BOOK, "us-east-1", {"L40S": "g6e.xlarge"})


def test_gpu_models_aws_does_not_sell_need_a_pin():
    (problem,) = check_models({"RTX4090", "H100", "CPU"}, {}, "fleet gaming: gpu.model")
    assert (problem.field, problem.value) == ("fleet gaming: gpu.model", "RTX4090")
    assert "add `equivalence: {RTX4090: <instance type>}`" in problem.fix
    assert check_models({"RTX4090"}, {"RTX4090": "g6e.xlarge"}, "x") == []


def test_units_of_the_measured_view():
    assert unit_on_demand("CPU", BOOK, "us-east-1", {}) == ("m7i.xlarge", pytest.approx(0.0504))
    assert unit_on_demand("H100", BOOK, "us-east-1", {}, memory_gb=80) == (
        "p5.48xlarge",
        pytest.approx(6.88),
    )
