"""Ledger usage against provisioned capacity: hours per type and kind, utilization, and the
measured view in words when the fleet idled."""

import datetime as dt

import pytest

from cluster.inventory import load_inventory
from cluster.ledger import Allocation, Ledger
from jobs.cost.analysis import measured_view
from jobs.cost.instances import unit_on_demand
from jobs.cost.prices import load_price_book
from jobs.cost.usage import HOURS, Period, period_bounds, provisioned, unit_hours, usage_frame
from tests.jobs.cost.samples import SNAPSHOT

NOW = dt.datetime(2026, 11, 27, 12, 0)


def test_period_bounds():
    p = period_bounds(NOW, period_days=30)
    assert p.hours == pytest.approx(720.0) and p.until == NOW
    explicit = period_bounds(
        NOW, 30, since=dt.datetime(2026, 11, 1), until=dt.datetime(2026, 11, 2)
    )
    assert explicit.hours == pytest.approx(24.0)


def ledger_rows(tmp_path, runs):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    t0 = NOW - dt.timedelta(days=2)
    for kind, alloc, hours, status in runs:
        wid = ledger.start(kind, kind, started_at=t0)
        ledger.finish(wid, status, [alloc], ended_at=t0 + dt.timedelta(hours=hours))
    period = period_bounds(NOW, period_days=30)
    return ledger.usage(period.since, period.until), period


def test_usage_from_a_real_ledger_by_type_and_kind(tmp_path):
    rows, period = ledger_rows(
        tmp_path,
        [
            ("finetune", Allocation("H100", gpus=8, cpus=32, nodes=1), 3.0, "SUCCEEDED"),
            ("finetune", Allocation("H100", gpus=16, cpus=32, nodes=2), 0.5, "FAILED"),
            ("serve", Allocation("H100", gpus=2, cpus=8, nodes=0.25), 10.0, "SUCCEEDED"),
            ("evaluate", Allocation("L40S", gpus=4, cpus=16, nodes=1), 1.0, "STOPPED"),
            ("pull", Allocation("CPU", cpus=1, nodes=1 / 32), 0.5, "SUCCEEDED"),
        ],
    )
    used = usage_frame(rows).groupby("accelerator_type")[HOURS].sum()
    assert used.loc["H100", "gpu_hours"] == pytest.approx(8 * 3 + 16 * 0.5 + 2 * 10)
    assert used.loc["H100", "node_hours"] == pytest.approx(3 + 1 + 2.5)
    assert used.loc["CPU", "cpu_hours"] == pytest.approx(0.5)
    inv = load_inventory(fleet="onprem")
    prov = provisioned(inv.nodes, period)
    # two 8-GPU H100 nodes, bought before the period: 16 GPUs * 720 h
    assert prov.loc["H100", "gpu_hours"] == pytest.approx(16 * 720)
    assert prov.loc["CPU", "cpu_hours"] == pytest.approx(32 * 720)
    assert unit_hours(prov).to_dict() == {"CPU": 32 * 720, "H100": 16 * 720, "L40S": 4 * 720}

    book = load_price_book(SNAPSHOT, "snapshot")
    mem = {"CPU": 0, "H100": 80, "L40S": 48}
    rates = {t: unit_on_demand(t, book, "us-east-1", {}, memory_gb=g)[1] for t, g in mem.items()}
    m = measured_view(inv, inv.site, rates, rows, period)
    by_type = m["by_type"].set_index("accelerator_type")
    assert by_type.loc["H100", "utilization"] == pytest.approx(52 / (16 * 720))
    assert m["utilization"] == pytest.approx((52 + 4) / (20 * 720))  # GPU-hours of the fleet
    # per GPU-hour of the cheapest instance for one GPU: p5.48xlarge / 8, g6e.xlarge
    assert m["cloud_on_demand_usd"] == pytest.approx(52 * 6.88 + 4 * 1.861 + 0.5 * 0.0504)
    # the failed run's 16 GPUs count, and its outcome is kept
    kinds = m["by_kind"].set_index(["kind", "status"])
    assert kinds.loc[("finetune", "FAILED"), "gpu_hours"] == pytest.approx(8.0)
    assert kinds.loc[("evaluate", "STOPPED"), "gpu_hours"] == pytest.approx(4.0)
    # nearly idle: no savings percentage, the cost per busy GPU-hour instead
    assert m["idle"] and m["savings_pct"] is None
    assert m["owned_per_busy_unit_hour"] == pytest.approx(m["owned_usd"] / 56.5)


def test_a_busy_fleet_gets_its_savings(tmp_path):
    inv = load_inventory(fleet="laptop")
    rows, period = ledger_rows(
        tmp_path,
        [
            ("serve", Allocation("CPU", cpus=2, nodes=1), 24 * 2, "SUCCEEDED"),  # 2 of the 30 days
        ],
    )
    book = load_price_book(SNAPSHOT, "snapshot")
    m = measured_view(
        inv,
        inv.site,
        {"CPU": unit_on_demand("CPU", book, "us-east-1", {})[1]},
        rows,
        Period(period.until - dt.timedelta(days=5), period.until),
    )
    assert m["utilization"] == pytest.approx(48 / 120) and not m["idle"]
    assert m["savings_pct"] == pytest.approx((1 - m["owned_usd"] / (96 * 0.0504)) * 100)


def test_a_node_bought_during_the_period_counts_from_its_purchase():
    inv = load_inventory(fleet="onprem")
    period = Period(dt.datetime(2024, 5, 1), dt.datetime(2024, 7, 1))  # l40s-01 bought 2024-06-01
    prov = provisioned(inv.nodes, period)
    assert prov.loc["L40S", "node_hours"] == pytest.approx(30 * 24)
    assert prov.loc["H100", "node_hours"] == pytest.approx(2 * 61 * 24)
    assert usage_frame([]).empty
