"""The TCO arithmetic against hand-computed examples, and its properties (hypothesis)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.inventory import load_inventory
from jobs.cost import tco
from jobs.cost.analysis import fleet_costs, planned_view, site_rates
from jobs.cost.equivalence import UnitRate

# The example site of cluster/inventory.yaml
EXAMPLE = tco.SiteRates(
    electricity_usd_per_kwh=0.0806,
    pue=1.25,
    avg_power_fraction=0.75,
    colocation_usd_per_kw_month=184.0,
    support_pct_per_year=8.0,
    amortization_years=5,
    staff_usd_per_year=40000.0,
    setup_usd=25000.0,
)
# A site with round numbers for a whole-fleet example
ROUND = tco.SiteRates(
    electricity_usd_per_kwh=0.10,
    pue=1.5,
    avg_power_fraction=0.5,
    colocation_usd_per_kw_month=100.0,
    support_pct_per_year=10.0,
    amortization_years=4,
    staff_usd_per_year=8760.0,
    setup_usd=5000.0,
)


def test_one_h100_node_by_hand():
    # h100-01 of the example fleet: $289,000, 10.2 kW, one of 4 nodes.
    #   depreciation = 289000 / (5 * 8760)          = 6.598173516
    #   power        = 10.2 * 0.75 * 1.25 * 0.0806  = 0.7707375
    #   colocation   = 10.2 * 184 * 12 / 8760       = 22521.6 / 8760 = 2.570958904
    #   support      = 0.08 * 289000 / 8760         = 23120 / 8760   = 2.639269406
    #   staff        = 40000 / 8760 / 4             = 1.141552511
    #   total        = 13.720691837 USD/hour
    node = tco.node_cost("h100-01", "H100", 8, 289000.0, 10200.0, EXAMPLE, nodes_in_fleet=4)
    assert node.depreciation == pytest.approx(6.598173516)
    assert node.power == pytest.approx(0.7707375)
    assert node.colocation == pytest.approx(2.570958904)
    assert node.support == pytest.approx(2.639269406)
    assert node.staff == pytest.approx(1.141552511)
    assert node.total == pytest.approx(13.720691837)
    assert node.opex == pytest.approx(13.720691837 - 6.598173516)


def test_a_whole_fleet_by_hand():
    # One node: $100,000, 1 kW, 8 GPUs; the ROUND site; AWS at $4 per GPU-hour.
    #   opex/hour = 1*0.5*1.5*0.10 + 1*100*12/8760 + 0.10*100000/8760 + 8760/8760
    #   opex/year = 657 + 1200 + 10000 + 8760 = 20,617      -> 1,718.0833 a month
    #   setup     = 100,000 + 5,000 = 105,000
    #   cloud at 50% utilization: 8 * 4 * 730 * 0.5 = 11,680 a month
    #   break-even = 105000 / (11680 - 1718.0833) = 10.5401 months
    #   36 months: on-prem 105000 + 1718.0833*36 = 166,851; cloud 11680*36 = 420,480
    #   savings = 1 - 166851 / 420480 = 60.319%
    node = tco.node_cost("n1", "H100", 8, 100000.0, 1000.0, ROUND, nodes_in_fleet=1)
    assert tco.maintenance_per_year([node]) == pytest.approx(20617.0)
    assert tco.setup_cost([node], ROUND) == pytest.approx(105000.0)
    cloud_monthly = tco.cloud_cost({"H100": 8}, {"H100": 4.0}) * tco.HOURS_PER_MONTH * 0.5
    assert cloud_monthly == pytest.approx(11680.0)
    assert tco.break_even_month(105000.0, 20617.0 / 12, cloud_monthly) == pytest.approx(
        10.5401, abs=1e-4
    )
    onprem = tco.onprem_cumulative(36, 105000.0, 20617.0 / 12)
    cloud = tco.cloud_cumulative(36, cloud_monthly)
    assert onprem[-1] == pytest.approx(166851.0)
    assert cloud[-1] == pytest.approx(420480.0)
    assert tco.savings_pct(onprem[-1], cloud[-1]) == pytest.approx(60.319, abs=1e-3)
    assert tco.planned_savings_pct(
        105000.0, 20617.0 / 12, 8 * 4.0 * tco.HOURS_PER_MONTH, 0.5, 36
    ) == pytest.approx(60.319, abs=1e-3)
    #   cost per 1M tokens, one GPU of this node busy every hour at 1,000 tokens/s:
    #   (100000/35040 + 20617/8760) / 8 = 0.6509275 USD/h; / 3.6M tokens * 1e6 = 0.180813
    per_gpu = tco.per_unit_hourly([node], "H100")
    assert per_gpu == pytest.approx(0.6509275, abs=1e-6)
    assert tco.cost_per_million_tokens(per_gpu, 1000.0) == pytest.approx(0.180813, abs=1e-6)


def test_the_example_fleet_through_the_planned_view():
    # The shipped `onprem` fleet at 60% for 36 months against p5.48xlarge / g6e.12xlarge /
    # m7i.xlarge on-demand ($6.88, $2.62316, $0.0504 per unit-hour):
    #   capex 635,000 + setup 25,000 = 660,000
    #   kW 23.05: power 23.05*0.75*1.25*0.0806*8760 = 15,257.4; colocation 23.05*184*12 = 50,894.4
    #   support 0.08*635000 = 50,800; staff 40,000   -> maintenance 156,951.8 a year
    #   cloud: (16*6.88 + 4*2.62316 + 32*0.0504) * 730 * 0.6 = 53,517.2 a month
    #   break-even = 660000 / (53517.2 - 13079.32) = 16.32 months
    #   36 months: 660000 + 13079.32*36 = 1,130,855 vs 53517.2*36 = 1,926,619 -> savings 41.30%
    inv = load_inventory(fleet="onprem")
    rates = {
        "H100": UnitRate("H100", "p5.48xlarge", "GPU", 8, 55.04, 6.88),
        "L40S": UnitRate("L40S", "g6e.12xlarge", "GPU", 4, 10.49264, 2.62316),
        "CPU": UnitRate("CPU", "m7i.xlarge", "vCPU", 4, 0.2016, 0.0504),
    }
    view = planned_view(inv, site_rates(inv.site), rates, 0.6, 36)
    assert view["setup_usd"] == pytest.approx(660000.0)
    assert view["maintenance_per_year_usd"] == pytest.approx(156951.8, abs=0.1)
    assert view["onprem_total_usd"] == pytest.approx(1130855.0, abs=1.0)
    od = view["options"]["on-demand"]
    assert od["monthly_usd"] == pytest.approx(53517.2, abs=0.1)
    assert od["break_even_month"] == pytest.approx(16.32, abs=0.01)
    assert od["savings_pct"] == pytest.approx(41.30, abs=0.01)
    assert not view["options"]["spot"]["available"]
    assert view["options"]["spot"]["missing"] == ["CPU", "H100", "L40S"]  # no spot given
    costs = fleet_costs(inv, site_rates(inv.site))
    assert sum(c.capex_usd for c in costs) == 635000.0


def test_reserved_terms_pay_up_front_at_each_term():
    assert tco.cloud_cumulative(3, 10.0, upfront_per_term=100.0, term_months=12) == [
        100.0,
        110.0,
        120.0,
        130.0,
    ]
    assert tco.cloud_cumulative(13, 0.0, 100.0, 12)[12:] == [100.0, 200.0]


money = st.floats(min_value=1.0, max_value=1e7, allow_nan=False)
small = st.floats(min_value=0.01, max_value=1e5, allow_nan=False)
share = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(upfront=money, opex=small, cloud_full=small, u1=share, u2=share, months=st.integers(1, 120))
def test_savings_fall_as_utilization_falls(upfront, opex, cloud_full, u1, u2, months):
    lo, hi = sorted((u1, u2))
    s_lo = tco.planned_savings_pct(upfront, opex, cloud_full, lo, months)
    s_hi = tco.planned_savings_pct(upfront, opex, cloud_full, hi, months)
    assert s_lo <= s_hi + 1e-9


@settings(max_examples=60, deadline=None)
@given(upfront=money, opex=small, cloud=small)
def test_break_even_exists_only_when_the_cloud_costs_more_than_opex(upfront, opex, cloud):
    month = tco.break_even_month(upfront, opex, cloud)
    if cloud > opex:
        assert month is not None and month > 0
        # the cumulative lines meet there
        assert upfront + opex * month == pytest.approx(cloud * month, rel=1e-6)
    else:
        assert month is None


@settings(max_examples=60, deadline=None)
@given(
    capex=st.floats(0, 1e6),
    power=st.floats(1, 20000),
    hours=st.floats(0, 1e5),
    k=st.floats(0.1, 10),
)
def test_costs_scale_linearly_with_hours(capex, power, hours, k):
    node = tco.node_cost("n", "H100", 8, capex, power, EXAMPLE, 3)
    one = tco.cost_of_hours(node.total, hours)
    assert tco.cost_of_hours(node.total, hours * k) == pytest.approx(one * k, rel=1e-9, abs=1e-9)
    cloud = tco.cloud_cost({"H100": 8 * hours}, {"H100": 6.88})
    assert tco.cloud_cost({"H100": 8 * hours * k}, {"H100": 6.88}) == pytest.approx(
        cloud * k, rel=1e-9, abs=1e-9
    )


@settings(max_examples=60, deadline=None)
@given(hourly=small, t1=st.floats(0.1, 1e5), t2=st.floats(0.1, 1e5), u=share)
def test_cost_per_million_tokens_falls_as_throughput_rises(hourly, t1, t2, u):
    lo, hi = sorted((t1, t2))
    assert tco.cost_per_million_tokens(hourly, hi, u) <= tco.cost_per_million_tokens(hourly, lo, u)
    # idle hours make an owned replica's tokens dearer
    assert tco.cost_per_million_tokens(hourly, lo, u) >= tco.cost_per_million_tokens(hourly, lo)


def test_no_cloud_means_no_savings_figure():
    assert tco.savings_pct(100.0, 0.0) is None
    assert tco.cost_per_million_tokens(1.0, 0.0) is None
    assert tco.break_even_utilization(1.0, 0.0) is None
    assert tco.break_even_utilization(1.0, 4.0) == 0.25
