"""The TCO arithmetic against hand-computed examples, and its properties (hypothesis)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.inventory import Site
from jobs.cost import tco
from jobs.cost.prices import Price

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
)
# A site with round numbers, nothing beyond power, colocation, support and staff
ROUND = Site(
    electricity_usd_per_kwh=0.10,
    pue=1.5,
    avg_power_fraction=0.5,
    colocation_usd_per_kw_month=100.0,
    support_pct_per_year=10.0,
    amortization_years=4,
    staff_usd_per_node_year=8760.0,
    setup_usd=5000.0,
)


def test_one_h100_node_by_hand():
    # h100-01 of the example fleet: $289,000, 10.2 kW.
    #   depreciation = 289000 / (5 * 8760)          = 6.598173516
    #   power        = 10.2 * 0.75 * 1.25 * 0.0806  = 0.7707375
    #   colocation   = 10.2 * 184 * 12 / 8760       = 2.570958904
    #   support      = 0.08 * 289000 / 8760         = 2.639269406
    #   staff        = 10000 / 8760                 = 1.141552511
    node = tco.node_costs([("h100-01", "H100", 8, 289000.0, 10200.0)], EXAMPLE).iloc[0]
    assert node["depreciation_usd_h"] == pytest.approx(6.598173516)
    assert node["power_usd_h"] == pytest.approx(0.7707375)
    assert node["colocation_usd_h"] == pytest.approx(2.570958904)
    assert node["support_usd_h"] == pytest.approx(2.639269406)
    assert node["staff_usd_h"] == pytest.approx(1.141552511)
    assert node["running_usd_h"] == pytest.approx(7.122518321)
    assert node["total_usd_h"] == pytest.approx(13.720691837)


def test_what_owning_costs_up_front_and_every_month():
    # $100,000, 1 kW on the example site:
    #   up front: 100,000 + 10% network/storage + 3% spares + 10,000 setup = 123,000
    #   capital: 123,000 * 7% / 12 = 717.5 a month; resale 25% at the end
    site = EXAMPLE.model_copy(update={"residual_value_pct": 25.0})
    own = tco.owned(tco.node_costs([("n", "H100", 8, 100000.0, 1000.0)], site), site)
    assert (own.network_storage_usd, own.spares_usd, own.upfront_usd) == (10000.0, 3000.0, 123000.0)
    assert own.capital_monthly_usd == pytest.approx(717.5)
    running = (0.0755625 + 184 * 12 / 8760 + 8000 / 8760 + 10000 / 8760) * tco.HOURS_PER_MONTH
    assert own.running_monthly_usd == pytest.approx(running)
    curve = own.cumulative(12)
    assert curve[0] == 123000.0
    assert curve[11] == pytest.approx(123000 + 11 * (running + 717.5))
    assert curve[12] == pytest.approx(123000 + 12 * (running + 717.5) - 25000)  # resale


def test_a_whole_fleet_against_on_demand_by_hand():
    # One node: $100,000, 1 kW, 8 GPUs; the ROUND site; AWS at $4 per GPU-hour, 50% busy.
    #   running/year = 657 + 1200 + 10000 + 8760 = 20,617 -> 1,718.0833 a month; up front 105,000
    #   cloud: 8 * 4 * 730 * 0.5 = 11,680 a month; break-even 105000 / (11680 - 1718.08) = 10.54
    #   36 months: 105000 + 1718.0833*36 = 166,851 vs 420,480 -> savings 60.319%
    own = tco.owned(tco.node_costs([("n1", "H100", 8, 100000.0, 1000.0)], ROUND), ROUND)
    assert own.running_monthly_usd * 12 == pytest.approx(20617.0)
    cloud = 8 * tco.rent_cumulative(4.0, 0.0, "on-demand", 0.5, 36)
    assert cloud[1] == pytest.approx(11680.0) and cloud[-1] == pytest.approx(420480.0)
    assert tco.break_even_month(own, 11680.0) == pytest.approx(10.5401, abs=1e-4)
    assert own.cumulative(36)[-1] == pytest.approx(166851.0)
    assert tco.savings_pct(166851.0, 420480.0) == pytest.approx(60.319, abs=1e-3)
    assert tco.break_even_month(own, 1000.0) is None  # renting never costs more per month
    # at u, renting costs 420480 / 0.5 * u: it equals owning at u = 166851 / 840960
    assert tco.break_even_utilization(166851.0, 0.0, 840960.0) == pytest.approx(0.198405, 1e-5)
    assert tco.break_even_utilization(166851.0, 200000.0, 0.0) is None  # a commitment


def test_commitments_pay_every_hour_and_their_upfront_at_each_term():
    # 1yr term, $100 up front, $10 a month, paid whatever the utilization
    one = tco.rent_cumulative(10 / tco.HOURS_PER_MONTH, 100.0, "RI 1yr Partial Upfront", 0.2, 25)
    assert one[0] == pytest.approx(100.0) and one[12] == pytest.approx(220.0)
    assert one[13] == pytest.approx(330.0) and one[25] == pytest.approx(550.0)  # 3 terms begun
    with_capital = tco.rent_cumulative(0.0, 1200.0, "RI 1yr All Upfront", 1.0, 12, capital_pct=10)
    assert with_capital[12] == pytest.approx(1200 * (1 + 0.10))  # a year of 10% on the cash
    busy = tco.rent_cumulative(1.0, 0.0, "Capacity Block", 0.25, 12)
    assert busy[-1] == pytest.approx(12 * tco.HOURS_PER_MONTH * 0.25)
    assert [tco.terms_begun(o, 36) for o in ("RI 1yr No Upfront", "RI 3yr No Upfront", "spot")] == [
        3,
        1,
        0,
    ]
    assert tco.terms_begun("Compute SP 3yr All Upfront", 37) == 2


def test_the_cheapest_option_per_type_fills_missing_prices_on_demand_and_skips_spot():
    prices = tco.price_frame(
        {"H100": 16, "L40S": 4},
        {
            "H100": {
                o: Price(hourly_usd=v, source="s", as_of="t")
                for o, v in (("on-demand", 6.88), ("Capacity Block", 4.916), ("spot", 1.0))
            },
            "L40S": {
                o: Price(hourly_usd=v, source="s", as_of="t")
                for o, v in (("on-demand", 2.62), ("spot", 1.27))
            },
        },
        months=12,
    )
    costs = tco.rent_costs(prices, 0.6, 12, 0.0)
    parts = tco.option_parts(
        costs.index, ["H100", "L40S"], ["on-demand", "Capacity Block", "RI 1yr No Upfront"]
    )
    assert parts == {
        "on-demand": [("H100", "on-demand"), ("L40S", "on-demand")],
        "Capacity Block": [("H100", "Capacity Block"), ("L40S", "on-demand")],
    }  # no type has a reserved price: no RI option
    choice = tco.cheapest(costs)
    assert choice == {"H100": "Capacity Block", "L40S": "on-demand"}  # spot can be reclaimed
    assert tco.mix_name(choice) == "Capacity Block (on-demand for L40S)"
    assert tco.mix_name(
        {"A": "RI 3yr No Upfront", "B": "Capacity Block", "C": "RI 3yr No Upfront"}
    ) == ("RI 3yr No Upfront for A, C; Capacity Block for B")


def test_tokens_and_cost_per_million():
    # 16 GPUs at 125 tok/s, 60% of 36 months: 16*125*3600*730*36*0.6 = 113.5 billion tokens
    made = tco.tokens_made({"H100": 16, "CPU": 32}, {"H100": 125.0}, 0.6, 36)
    assert made == pytest.approx(16 * 125 * 3600 * 730 * 36 * 0.6)
    assert tco.cost_per_million(1.0e6, made) == pytest.approx(1e12 / made)
    assert tco.cost_per_million(1.0, 0.0) is None
    assert tco.bisect_utilization(lambda u: 100 * u, 60.0) == pytest.approx(0.6)
    assert tco.bisect_utilization(lambda u: 10 * u, 60.0) is None  # never reaches owning


@settings(max_examples=60, deadline=None)
@given(
    capex=st.floats(1e3, 1e7),
    power_w=st.floats(50, 20000),
    od=st.floats(0.05, 100),
    u1=st.floats(0.05, 1.0),
    u2=st.floats(0.05, 1.0),
)
def test_savings_grow_with_utilization_and_never_exceed_100(capex, power_w, od, u1, u2):
    lo, hi = sorted((u1, u2))
    own = tco.owned(tco.node_costs([("n", "H100", 8, capex, power_w)], EXAMPLE), EXAMPLE)
    total = own.cumulative(36)[-1]
    s_lo = tco.savings_pct(total, 8 * tco.rent_cumulative(od, 0, "on-demand", lo, 36)[-1])
    s_hi = tco.savings_pct(total, 8 * tco.rent_cumulative(od, 0, "on-demand", hi, 36)[-1])
    assert s_lo <= s_hi + 1e-9 and s_hi < 100
    be = tco.break_even_month(own, 8 * od * tco.HOURS_PER_MONTH * hi)
    curve = 8 * tco.rent_cumulative(od, 0, "on-demand", hi, 36)
    if be is not None and be < 35:  # the lines cross where the formula says
        m = int(np.ceil(be))
        assert own.cumulative(36)[m] <= curve[m] + 1e-6 * curve[m]


def test_node_costs_are_a_frame_of_the_fleet():
    df = tco.node_costs(
        [("a", "CPU", 32, 9000.0, 450.0), ("b", "L40S", 4, 48000.0, 2200.0)], EXAMPLE
    )
    assert isinstance(df, pd.DataFrame) and list(df["node"]) == ["a", "b"]
    assert (df["total_usd_h"] > df["running_usd_h"]).all()
