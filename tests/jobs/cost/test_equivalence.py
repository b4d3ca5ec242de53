"""On-prem GPU models and CPUs priced through the AWS instance that carries them."""

import pytest

from jobs.cost.equivalence import EquivalenceError, check_models, instance_for, unit_rate
from jobs.cost.prices import load_price_book
from tests.jobs.cost.samples import SNAPSHOT


@pytest.fixture(scope="module")
def book():
    return load_price_book(SNAPSHOT, "snapshot")


def test_per_gpu_and_per_vcpu_rates(book):
    h100 = unit_rate("H100", book, "us-east-1")
    assert (h100.instance_type, h100.unit, h100.units_per_instance) == ("p5.48xlarge", "GPU", 8)
    assert h100.on_demand == pytest.approx(55.04 / 8)  # 6.88 per GPU-hour
    assert h100.prices["Capacity Block"].hourly_usd == pytest.approx(39.33 / 8)  # 4.916
    assert h100.prices["Capacity Block"].source == "aws-capacity-blocks-page"
    assert set(h100.prices) == {"on-demand", "Capacity Block"}
    a100 = unit_rate("A100-80GB", book, "us-east-1")
    assert a100.on_demand == pytest.approx(27.44705 / 8) and not a100.notes
    cpu = unit_rate("CPU", book, "us-east-1")
    assert (cpu.instance_type, cpu.unit) == ("m7i.xlarge", "vCPU")
    assert cpu.on_demand == pytest.approx(0.2016 / 4)
    assert cpu.prices["spot"].hourly_usd == pytest.approx(0.0888 / 4)  # median of the zones


def test_overrides_and_a_different_gpu_is_noted(book):
    assert instance_for("L40S", {"L40S": "g6e.xlarge"}) == "g6e.xlarge"
    assert unit_rate("L40S", book, "us-east-1", {"L40S": "g6e.xlarge"}).on_demand == 1.861
    odd = unit_rate("H100", book, "us-east-1", {"H100": "g6e.12xlarge"})
    assert any("carries L40S, not H100" in n for n in odd.notes)
    with pytest.raises(EquivalenceError, match="carries no GPU"):
        unit_rate("H100", book, "us-east-1", {"H100": "m7i.xlarge"})


def test_unknown_model_names_the_known_ones():
    with pytest.raises(EquivalenceError) as err:
        instance_for("RTX4090", {})
    problem = err.value.problems[0]
    assert problem.value == "RTX4090"
    assert "known: A100-40GB, A100-80GB, A10G, H100, H200, L4, L40S, T4, V100" in problem.message
    assert "equivalence: {RTX4090: <instance type>}" in problem.fix
    assert check_models({"CPU", "H100", "RTX4090"}, {}, "fleet x")[0].field == "fleet x"
    assert check_models({"RTX4090"}, {"RTX4090": "g6e.xlarge"}, "fleet x") == []


def test_an_instance_missing_from_the_prices_says_how_to_fix_it(book):
    with pytest.raises(EquivalenceError) as err:
        unit_rate("V100", book, "us-east-1")
    problem = err.value.problems[0]
    assert (problem.field, problem.value) == ("equivalence.V100", "p3.2xlarge")
    assert "is not priced in the snapshot prices for us-east-1" in problem.message
    assert "pricing=live" in problem.fix and "p5.48xlarge" in problem.fix
    # a region with only Capacity Block rates has no on-demand price to compare with
    with pytest.raises(EquivalenceError, match="is not priced in the snapshot prices for us-e"):
        unit_rate("A100-40GB", book, "us-east-2")
