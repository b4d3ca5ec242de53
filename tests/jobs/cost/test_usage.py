"""Ledger usage against provisioned capacity: hours per type and kind, utilization."""

import datetime as dt

import pytest

from cluster.inventory import load_inventory
from cluster.ledger import Allocation, Ledger
from jobs.cost.usage import (
    Period,
    fleet_utilization,
    period_bounds,
    provisioned,
    usage_by,
    utilization,
)

NOW = dt.datetime(2026, 11, 27, 12, 0)


def test_period_bounds():
    p = period_bounds(NOW, period_days=30)
    assert p.hours == pytest.approx(720.0) and p.until == NOW
    explicit = period_bounds(
        NOW, 30, since=dt.datetime(2026, 11, 1), until=dt.datetime(2026, 11, 2)
    )
    assert explicit.hours == pytest.approx(24.0)


def test_usage_from_a_real_ledger_by_type_and_kind(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    t0 = NOW - dt.timedelta(days=2)
    for kind, alloc, hours in [
        ("finetune", Allocation("H100", gpus=8, cpus=32, nodes=1), 3.0),
        ("serve", Allocation("H100", gpus=2, cpus=8, nodes=0.25), 10.0),
        ("evaluate", Allocation("L40S", gpus=4, cpus=16, nodes=1), 1.0),
        ("pull", Allocation("CPU", cpus=1, nodes=1 / 32), 0.5),
    ]:
        wid = ledger.start(kind, kind, started_at=t0)
        ledger.finish(wid, "SUCCEEDED", [alloc], ended_at=t0 + dt.timedelta(hours=hours))
    period = period_bounds(NOW, period_days=30)
    rows = ledger.usage(period.since, period.until)
    by_type = usage_by(rows, "accelerator_type")
    assert by_type["H100"].gpu_hours == pytest.approx(8 * 3 + 2 * 10)
    assert by_type["H100"].node_hours == pytest.approx(3 + 2.5)
    assert by_type["CPU"].cpu_hours == pytest.approx(0.5)
    by_kind = usage_by(rows, "kind", "accelerator_type")
    assert set(by_kind) == {"finetune/H100", "serve/H100", "evaluate/L40S", "pull/CPU"}

    inv = load_inventory(fleet="onprem")
    prov = provisioned(inv.nodes, period)
    # two 8-GPU H100 nodes, bought before the period: 16 GPUs * 720 h
    assert prov["H100"].gpu_hours == pytest.approx(16 * 720)
    assert prov["CPU"].cpu_hours == pytest.approx(32 * 720)
    assert utilization(by_type["H100"], prov["H100"]) == pytest.approx(44 / (16 * 720))
    assert utilization(by_type["CPU"], prov["CPU"]) == pytest.approx(0.5 / (32 * 720))
    assert utilization(None, prov["L40S"]) == 0.0
    assert utilization(by_type["H100"], None) is None
    gpu_used = 44 + 4
    assert fleet_utilization(by_type, prov) == pytest.approx(gpu_used / (20 * 720))


def test_a_node_bought_during_the_period_counts_from_its_purchase():
    inv = load_inventory(fleet="onprem")
    period = Period(dt.datetime(2024, 5, 1), dt.datetime(2024, 7, 1))  # l40s-01 bought 2024-06-01
    prov = provisioned(inv.nodes, period)
    assert prov["L40S"].node_hours == pytest.approx(30 * 24)
    assert prov["H100"].node_hours == pytest.approx(2 * 61 * 24)
    laptop = load_inventory(fleet="laptop")
    cpu_only = provisioned(laptop.nodes, Period(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)))
    assert fleet_utilization({}, cpu_only) == 0.0
