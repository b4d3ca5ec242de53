"""Each AWS billing rule against a worked example computed by hand: Capacity Blocks as prepaid
whole days within AWS's duration rules, commitments every hour of their term (renewed, and owed
past the horizon), on-demand per hour used, training on spot with its overhead, Business
Support tiers, present value."""

import numpy as np
import pytest

from jobs.cost import billing

H = billing.HOURS_PER_MONTH  # 730


def aws_allows(days: int) -> bool:
    """AWS's rule (EC2 user guide): 1-14 days in 1-day steps, then 7-day steps up to 182."""
    return 1 <= days <= 14 or (days % 7 == 0 and days <= 182)


@pytest.mark.parametrize(
    ("days", "paid", "blocks"),
    [
        (1, 1, [1]),
        (2.2, 3, [3]),  # 2.2 days of use is 3 whole days
        (14, 14, [14]),
        (15, 21, [21]),  # past 14 days, 7-day steps: 21
        (28, 28, [28]),
        (182, 182, [182]),
        (183, 183, [182, 1]),
        (200, 203, [182, 21]),  # 18 days left over: 21
        (1095, 1095, [182] * 6 + [3]),  # 36 months: six 182-day blocks and 3 days
    ],
)
def test_capacity_blocks_cover_whole_days_in_aws_lengths(days, paid, blocks):
    assert billing.block_days(days) == paid
    assert sum(blocks) == paid and all(aws_allows(b) for b in blocks)


def test_a_serving_load_holds_blocks_around_the_clock():
    # one month = round(30.4167) = 30 days: more than 14, so one 35-day block, prepaid:
    # 2 instances x 35 days x 24 h x $10 = $16,800 at the start, however little was used
    one = billing.capacity_blocks(np.array([[2.0]]), np.array([10.0]))
    assert one[0, 0] == pytest.approx(16800.0) and one.sum() == pytest.approx(16800.0)
    # 12 months = 365 days: blocks of 182, 182 and 1 day starting on days 0, 182, 364 (months
    # 0, 5, 11), each sized for the busiest month it covers: 1 instance in months 0-5, 3 after
    need = np.array([[1.0] * 6 + [3.0] * 6])
    flows = billing.capacity_blocks(need, np.array([1.0]))
    assert flows[0, 0] == pytest.approx(1 * 182 * 24)
    assert flows[0, 5] == pytest.approx(3 * 182 * 24)  # month 5 is in both: the block sees 3
    assert flows[0, 11] == pytest.approx(3 * 1 * 24)
    assert flows.sum() == pytest.approx(4368 + 13104 + 72)


def test_commitments_are_paid_every_hour_of_their_term_and_past_the_horizon():
    # a 1-year term per instance, $100 up front and $2 an hour: 2 instances from month 0, a
    # third from month 2; the horizon is 4 months but every term runs 12
    flows = billing.commitment(
        np.array([[2.0, 2.0, 3.0, 3.0]]), np.array([2.0]), np.array([100.0]), 1
    )
    assert flows[0, 0] == 200  # two terms' upfront as they start
    assert flows[0, 1] == pytest.approx(2 * 2 * H)  # month 0's hours, paid at its end
    assert flows[0, 2] == pytest.approx(100 + 2 * 2 * H)  # the third term starts; month 1
    assert flows[0, 3] == pytest.approx(3 * 2 * H)  # month 2: three terms running
    assert flows[0, 12] == pytest.approx(3 * 2 * H)  # month 11
    assert flows[0, 13] == pytest.approx(1 * 2 * H)  # months 12-13: the third term's rest
    assert flows[0, 14] == pytest.approx(1 * 2 * H) and flows[0, 15] == 0
    assert flows.sum() == pytest.approx(300 + 36 * 2 * H)  # 36 instance-months paid


def test_a_term_that_ends_while_still_needed_is_renewed_for_a_whole_term():
    # needed for 14 months on a 1-year term: the renewal at month 12 runs to month 23
    flows = billing.commitment(np.ones((1, 14)), np.array([1.0]), np.array([0.0]), 1)
    assert flows[0, 1:25] == pytest.approx(np.full(24, H)) and flows[0, 25:].sum() == 0


def test_on_demand_pays_the_hours_used_at_the_end_of_the_month():
    flows = billing.hourly(np.array([[100.0, 50.0]]), np.array([3.0]))
    assert list(flows[0, :4]) == [0, 300, 150, 0]


def test_training_on_one_instance_by_option():
    # 384 GPU-hours on an 8-GPU instance: one instance for 48 h (under a week)
    #   on-demand 48 x 55.04; a Capacity Block of 2 whole days at 36.18; spot 48 x 1.15 x 20
    cost = billing.training_cost(np.array([384.0]), 8, 55.04, 36.18, 20.0, np.array([15.0]))
    assert cost["on-demand"][0] == pytest.approx(2641.92)
    assert cost["Capacity Block"][0] == pytest.approx(2 * 24 * 36.18)
    assert cost["spot"][0] == pytest.approx(48 * 1.15 * 20)
    # 2,000 GPU-hours: more than a week on one instance, so 2 instances for 125 h (6 days)
    two = billing.training_cost(np.array([2000.0]), 8, 1.0, 1.0, None, np.array([0.0]))
    assert two["on-demand"][0] == pytest.approx(2 * 125) and "spot" not in two
    assert two["Capacity Block"][0] == pytest.approx(2 * 6 * 24)


def test_business_support_tiers():
    # AWS's own example: $85,000 a month -> 10% of 10k + 7% of 70k + 5% of 5k = $6,150
    bills = np.array([85_000.0, 50.0, 0.0, 300_000.0])
    expected = [6150.0, 100.0, 0.0, 1000 + 4900 + 8500 + 1500]
    assert billing.support(bills) == pytest.approx(expected)


def test_present_value_discounts_by_the_month():
    flows = np.zeros((1, 13))
    flows[0, 0], flows[0, 12] = 100.0, 110.0  # now, and a year from now at 10%
    assert billing.npv(flows, np.array([10.0]))[0] == pytest.approx(200.0)
