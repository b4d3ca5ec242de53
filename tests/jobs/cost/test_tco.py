"""The owned side against hand-computed examples: running costs per node, capex with gear and
spares, servers added when demand outgrows the fleet, depreciation and resale at the horizon."""

import numpy as np
import pytest

from cluster.inventory import Site
from jobs.cost import tco

# The example site of cluster/inventory.yaml
EXAMPLE = Site(
    electricity_usd_per_kwh=0.0806,
    pue=1.25,
    avg_power_fraction=0.75,
    colocation_usd_per_kw_month=184.0,
    support_pct_per_year=8.0,
    amortization_years=5,
    staff_usd_per_node_year=10000.0,
    setup_usd=10000.0,
    network_storage_pct=10.0,
    spares_pct=3.0,
    cost_of_capital_pct=7.0,
    residual_value_pct=50.0,
)
ROUND = {  # round numbers: power 1 kW x 730 h x 0.5 x 1.5 x $0.10 = $54.75 a month
    "electricity_usd_per_kwh": 0.10, "pue": 1.5, "avg_power_fraction": 0.5,
    "colocation_usd_per_kw_month": 100.0, "support_pct_per_year": 10.0,
    "failure_pct_per_year": 2.0, "staff_usd_per_node_year": 8760.0, "setup_usd": 5000.0,
    "network_storage_pct": 10.0, "spares_pct": 3.0, "residual_value_pct": 50.0,
    "capex_factor": 1.0,
}  # fmt: skip


def test_one_h100_node_by_hand():
    # h100-01 of the example fleet: $289,000, 10.2 kW; failures at 2% of capex a year
    #   power      = 10.2 * 0.75 * 1.25 * 0.0806  = 0.7707375 an hour
    #   colocation = 10.2 * 184 * 12 / 8760       = 2.570958904
    #   support    = 0.08 * 289000 / 8760         = 2.639269406
    #   failures   = 0.02 * 289000 / 8760         = 0.659817352
    #   staff      = 10000 / 8760                 = 1.141552511
    node = tco.node_costs([("h100-01", "H100", 8, 289000.0, 10200.0)], EXAMPLE, 2.0).iloc[0]
    assert node["power_usd_h"] == pytest.approx(0.7707375)
    assert node["colocation_usd_h"] == pytest.approx(2.570958904)
    assert node["support_usd_h"] == pytest.approx(2.639269406)
    assert node["failures_usd_h"] == pytest.approx(0.659817352)
    assert node["staff_usd_h"] == pytest.approx(1.141552511)
    assert node["running_usd_h"] == pytest.approx(7.782335673)
    assert node["depreciation_usd_h"] == pytest.approx(289000 / (5 * 8760))


def test_owning_one_server_for_a_year_by_hand():
    # $100,000, 1 kW, a 4-year life, 12 months:
    #   month 0: 100,000 x 1.13 (10% network/storage, 3% spares) + 5,000 setup = 118,000
    #   running a month: 54.75 power + 100 colocation + 833.33 support + 166.67 failures
    #                    + 730 staff = 1,884.75, paid at each month's end
    #   resale at month 12: book value 1 - 1/4 = 75% x 50% = 37,500 credited
    running = 54.75 + 100 + 10000 / 12 + 2000 / 12 + 730
    flows = tco.owned_flows(
        np.array([100000.0]), np.array([1.0]), np.zeros((1, 12)), 0, ROUND, life_years=4
    )
    assert flows[0, 0] == pytest.approx(118000.0)
    assert flows[0, 1:12] == pytest.approx(np.full(11, running))
    assert flows[0, 12] == pytest.approx(running - 37500.0)
    assert flows[0, 13:].sum() == 0


def test_a_server_added_when_demand_outgrows_the_fleet():
    # the same server copied at month 6: bought then (113,000), running from month 6, and sold
    # at month 12 at 50% of its book value after half a year: 1 - 0.5/4 = 87.5% -> 43,750
    added = np.array([[0.0] * 6 + [1.0] * 6])
    base = tco.owned_flows(np.array([100000.0]), np.array([1.0]), np.zeros((1, 12)), 0, ROUND, 4)
    more = tco.owned_flows(np.array([100000.0]), np.array([1.0]), added, 0, ROUND, 4)
    extra = more[0] - base[0]
    running = 54.75 + 100 + 10000 / 12 + 2000 / 12 + 730
    assert extra[6] == pytest.approx(113000.0)
    assert extra[7:12] == pytest.approx(np.full(5, running))
    assert extra[12] == pytest.approx(running - 43750.0)
    assert extra[:6].sum() == 0


def test_inputs_vary_per_sample():
    # two samples: staff $0 and $8,760 a year -> the second pays $730 more every month
    x = ROUND | {"staff_usd_per_node_year": np.array([0.0, 8760.0])}
    flows = tco.owned_flows(np.array([100000.0]), np.array([1.0]), np.zeros((2, 3)), 0, x, 4)
    assert (flows[1, 1:4] - flows[0, 1:4]) == pytest.approx([730, 730, 730])
