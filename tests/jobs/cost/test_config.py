"""CostConfig: the shipped configs load; bad input is refused before any work, every problem
named with the field, the value and the fix."""

import datetime as dt
import json
from pathlib import Path

import pytest

from cluster.config import ConfigError, load_config
from cluster.ledger import Allocation, Ledger
from jobs.cost.config import CostConfig
from jobs.cost.run import preflight

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "jobs" / "configs" / "cost").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # configs name repo-relative paths (inventory, price snapshot)


def test_demo_and_onprem_configs_ship():
    assert {p.name for p in SHIPPED} >= {"demo.yaml", "onprem.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads_and_shows_its_command(path):
    cfg = load_config(CostConfig, path)
    assert cfg.fleet == "onprem"
    text = path.read_text()
    assert "python -m jobs.cost_report --config jobs/configs/cost/" + path.name in text


def problems_of(*overrides, tmp=None):
    with pytest.raises(ConfigError) as err:
        load_config(CostConfig, REPO / "jobs/configs/cost/demo.yaml", list(overrides))
    return err.value.problems, str(err.value)


def test_unknown_fleet_names_the_known_ones():
    problems, text = problems_of("fleet=nowhere")
    assert [(p.field, p.value) for p in problems] == [("fleet", "nowhere")]
    assert "is not a fleet of cluster/inventory.yaml" in text
    assert "Fix: use one of: l40s, laptop, onprem" in text
    both, _ = problems_of("fleet=nowhere", "measured_fleet=null")  # one fleet, one problem
    assert [p.field for p in both] == ["fleet"]


def test_unknown_gpu_model_names_the_known_ones_and_the_fix(tmp_path):
    inv = tmp_path / "inventory.yaml"
    site = (REPO / "cluster" / "inventory.yaml").read_text().split("fleets:")[0]
    inv.write_text(
        site
        + """fleets:
  gaming:
    - name: box
      role: head
      gpu: {model: RTX4090, count: 2, memory_gb: 24, tdp_w: 450}
      cpus: 16
      ram_gb: 64
      purchase_usd: 6000
      purchase_date: 2025-01-01
      power_w: 1200
"""
    )
    problems, text = problems_of(
        f"inventory={inv}", "fleet=gaming", "measured_fleet=gaming", "scenarios=[]"
    )
    gpu = [p for p in problems if p.value == "RTX4090"]
    assert gpu and gpu[0].field == "fleet gaming: gpu.model"
    assert "known: A100-40GB, A100-80GB, A10G, H100, H200, L4, L40S, T4, V100" in text
    assert "add `equivalence: {RTX4090: <instance type>}`" in text
    # the capacity section plans CPU replicas, which this fleet does not have: also reported
    assert any(p.field == "capacity.accelerator_type" for p in problems)
    # mapped explicitly, the model is accepted
    cfg = load_config(
        CostConfig,
        REPO / "jobs/configs/cost/demo.yaml",
        [
            f"inventory={inv}",
            "fleet=gaming",
            "measured_fleet=gaming",
            "capacity=null",
            "scenarios=[]",
            "equivalence={RTX4090: g6e.xlarge}",
        ],
    )
    assert cfg.equivalence == {"RTX4090": "g6e.xlarge"}


def test_missing_bench_and_malformed_snapshot_are_reported_together(tmp_path):
    snap = json.loads((REPO / "data/pricing/aws-2026-08.json").read_text())
    snap["regions"]["us-east-1"]["p5.48xlarge"]["prices"]["on-demand"]["hourly_usd"] = "fifty"
    bad = tmp_path / "aws-bad.json"
    bad.write_text(json.dumps(snap))
    problems, text = problems_of(
        "bench=reports/bench/nope/bench.json",
        f"snapshot={bad}",
        "since=2026-11-10",
        "until=2026-11-01",
        "equivalence={H100: p5-48xlarge}",
        "measured_site={pue: 1.0, staf_usd_per_node_year: 0}",
    )
    fields = [p.field for p in problems]
    assert "bench" in fields and "since" in fields and "equivalence.H100" in fields
    assert "measured_site" in fields
    snap_problem = next(p for p in problems if p.field.startswith("snapshot"))
    assert "regions.us-east-1.p5.48xlarge.prices.on-demand.hourly_usd" in snap_problem.field
    assert snap_problem.value == "fifty"
    assert "no such file" in text and "give the path of a bench.json" in text
    assert "5 problems" in text  # since, measured_site, equivalence, snapshot, bench


def test_capacity_needs_exactly_one_load():
    problems, text = problems_of("capacity.tokens_per_day=100000")
    assert problems[0].field == "capacity"
    assert "give exactly one of requests_per_s and tokens_per_day" in text


def test_ledger_usage_on_an_unknown_gpu_is_refused_in_preflight(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = dt.datetime(2026, 11, 27, 12)
    wid = ledger.start("serve", "x", started_at=now - dt.timedelta(hours=2))
    ledger.finish(wid, "SUCCEEDED", [Allocation("MI300X", gpus=1, nodes=0.125)], ended_at=now)
    cfg = load_config(CostConfig, REPO / "jobs/configs/cost/demo.yaml", ["newest_bench=false"])
    with pytest.raises(ConfigError) as err:
        preflight(cfg, now=now, ledger=ledger)
    problem = err.value.problems[0]
    assert (problem.field, problem.value) == ("ledger accelerator_type", "MI300X")
    assert "equivalence: {MI300X:" in problem.fix


def test_scenarios_name_fleets_and_gpu_models_of_the_inventory():
    problems, text = problems_of(
        "scenarios=[{fleet: l40s, model: 8B, params_b: 8, serve_tokens_per_s: {L40: 275}, "
        "source: test}, {fleet: mars, model: 8B, params_b: 8, serve_tokens_per_s: {}, "
        "source: test}]"
    )
    assert [(p.field, p.value) for p in problems] == [("scenarios.1.fleet", "mars")]
    problems, text = problems_of(
        "scenarios=[{fleet: l40s, model: 8B, params_b: 8, serve_tokens_per_s: {L40: 275}, "
        "source: test}]"
    )
    assert [(p.field, p.value) for p in problems] == [("scenarios.0.serve_tokens_per_s", "L40")]
    assert "is not a GPU model of fleet 'l40s' (L40S). Fix: did you mean L40S?" in text


def test_the_api_prices_default_to_the_sourced_list_prices():
    cfg = load_config(CostConfig, REPO / "jobs/configs/cost/onprem.yaml")
    team, mini = cfg.api
    assert (team.name, team.input_usd_per_1m, team.output_usd_per_1m) == (
        "fine-tuned gpt-4o",
        3.75,
        15.0,
    )
    assert (team.training_usd_per_1m, mini.training_usd_per_1m) == (25.0, 3.0)
    assert "OpenAI list prices" in team.source and "April 2026" in team.source
    # 1024 prompt tokens per 256 output tokens: 15 + 4 x 3.75 = 30 USD per 1M output tokens
    assert team.per_1m_output(1024, 256) == pytest.approx(30.0)
    assert [s.fleet for s in cfg.scenarios] == ["onprem", "l40s"] and cfg.fleets == [
        "onprem",
        "l40s",
    ]
