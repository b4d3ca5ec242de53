"""CostConfig: the shipped configs load; bad input (negative prices, ranges with min above max, a
replica its GPUs cannot hold, an instance AWS does not sell, ...) is refused before any work,
every problem named with the field, the value and the fix."""

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
DEMO = REPO / "jobs/configs/cost/demo.yaml"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # configs name repo-relative paths (inventory, price snapshot)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads_and_shows_its_command(path):
    cfg = load_config(CostConfig, path)
    assert cfg.fleet == "onprem" and cfg.scenario("onprem").params_b == 70
    assert "python -m jobs.cost_report --config jobs/configs/cost/" + path.name in path.read_text()


def problems_of(*overrides):
    with pytest.raises(ConfigError) as err:
        load_config(CostConfig, DEMO, list(overrides))
    return err.value.problems, str(err.value)


def test_unknown_fleet_names_the_known_ones():
    problems, text = problems_of("fleet=nowhere")
    assert [(p.field, p.value) for p in problems] == [("fleet", "nowhere")]
    assert "Fix: use one of: l40s, laptop, onprem" in text


def test_negative_prices_name_the_field():
    problems, text = problems_of(
        "api=[{name: x, input_usd_per_1m: 1, output_usd_per_1m: -2, source: s}]",
        "cloud.egress_usd_per_gb=-0.09",
    )
    assert {p.field for p in problems} == {"api.0.output_usd_per_1m", "cloud.egress_usd_per_gb"}
    assert "greater than or equal to 0" in text and "list price of output tokens" in text


def test_every_input_needs_a_range_low_to_high_around_its_value():
    problems, _ = problems_of(
        "ranges.pue=[1.6, 1.1]", "ranges.capex_factor=[1.1, 1.3]", "ranges.pue_factor=[1, 2]"
    )
    by_field = {p.field: p for p in problems}
    assert by_field["ranges.pue"].message == "min is above max"
    assert by_field["ranges.pue"].fix == "write it [low, high]: [1.1, 1.6]"
    assert "leaves out its value 1" in by_field["ranges.capex_factor"].message
    assert by_field["ranges.pue_factor"].message == "is not an input"


def test_an_input_without_a_range_is_refused(tmp_path):
    text = DEMO.read_text()
    cut = tmp_path / "demo.yaml"
    cut.write_text(
        text.replace("  pue: [1.1, 1.6]\n", "").replace(
            "  staff_usd_per_node_year: [5000, 30000]\n", ""
        )
    )
    with pytest.raises(ConfigError) as err:
        load_config(CostConfig, cut)
    assert [(p.field, p.value) for p in err.value.problems] == [
        ("ranges", "pue"),
        ("ranges", "staff_usd_per_node_year"),
    ]
    assert "has no range (every input needs one)" in str(err.value)
    assert "add `pue: [low, high]` around 1.25" in str(err.value)


def test_a_replica_its_gpus_cannot_hold():
    problems, _ = problems_of(
        "scenarios=[{fleet: onprem, model: 70B, params_b: 70, replicas: {H100: {gpus: 8}, "
        "L40S: {gpus: 2}}, source: t}]"
    )
    (p,) = problems
    assert (p.field, p.value) == ("scenarios.0.replicas.L40S.gpus", 2)
    assert "2 x 48 GB cannot hold 70B in bf16 (154 GB" in p.message
    assert p.fix == "give at least 4 GPUs per replica"


def test_scenarios_name_fleets_and_gpu_models_of_the_inventory():
    problems, text = problems_of(
        "scenarios=[{fleet: onprem, model: m, params_b: 8, replicas: {H100: {gpus: 1}}, "
        "source: t}, {fleet: l40s, model: m, params_b: 8, replicas: {L40: {gpus: 1}}, source: t}]"
    )
    assert [(p.field, p.value) for p in problems] == [("scenarios.1.replicas", "L40")]
    assert "is not a GPU model of fleet 'l40s' (L40S). Fix: did you mean L40S?" in text
    none, text = problems_of(
        "scenarios=[{fleet: l40s, model: m, params_b: 8, replicas: {L40S: {gpus: 1}}, source: t}]"
    )
    assert [p.field for p in none] == ["scenarios"] and "no entry for fleet 'onprem'" in text


def test_unknown_gpu_model_names_the_known_ones_and_the_fix(tmp_path):
    inv = tmp_path / "inventory.yaml"
    site = (REPO / "cluster" / "inventory.yaml").read_text().split("fleets:")[0]
    inv.write_text(site + """fleets:
  gaming:
    - name: box
      role: head
      gpu: {model: RTX4090, count: 2, memory_gb: 24, tdp_w: 450}
      cpus: 16
      ram_gb: 64
      purchase_usd: 6000
      purchase_date: 2025-01-01
      power_w: 1200
""")  # fmt: skip
    scen = (
        "scenarios=[{fleet: gaming, model: m, params_b: 8, replicas: {RTX4090: {gpus: 1}}, "
        "source: t}]"
    )
    fleet = [f"inventory={inv}", "fleet=gaming", "measured_fleet=gaming", scen]
    problems, text = problems_of(*fleet)
    gpu = [p for p in problems if p.value == "RTX4090"]
    assert gpu and gpu[0].field == "fleet gaming: gpu.model"
    assert "known: A100-40GB, A100-80GB, A10G, H100, H200, L4, L40S, T4, V100" in text
    assert "add `equivalence: {RTX4090: <instance type>}`" in text
    cfg = load_config(CostConfig, DEMO, [*fleet, "equivalence={RTX4090: g6e.xlarge}"])
    assert cfg.equivalence == {"RTX4090": "g6e.xlarge"}


def test_missing_bench_and_malformed_snapshot_are_reported_together(tmp_path):
    snap = json.loads((REPO / "data/pricing/aws-2026-12.json").read_text())
    snap["regions"]["us-east-1"]["p5.48xlarge"]["prices"]["on-demand"]["hourly_usd"] = -55.04
    bad = tmp_path / "aws-bad.json"
    bad.write_text(json.dumps(snap))
    problems, text = problems_of(
        "bench=reports/bench/nope/bench.json", f"snapshot={bad}", "since=2026-11-10",
        "until=2026-11-01", "equivalence={H100: p5-48xlarge}",
        "measured_site={pue: 1.0, staf_usd_per_node_year: 0}",
    )  # fmt: skip
    fields = [p.field for p in problems]
    assert {"bench", "since", "equivalence.H100", "measured_site"} <= set(fields)
    snap_problem = next(p for p in problems if p.field.startswith("snapshot"))
    assert "regions.us-east-1.p5.48xlarge.prices.on-demand.hourly_usd" in snap_problem.field
    assert snap_problem.value == -55.04 and "greater than or equal to 0" in snap_problem.message
    assert "5 problems" in text


def test_an_instance_aws_does_not_sell_is_refused_in_preflight(platform_root):
    cfg = load_config(CostConfig, DEMO, ["equivalence={H100: p5.96xlarge}", "newest_bench=false"])
    with pytest.raises(ConfigError) as err:
        preflight(cfg, ledger=Ledger())
    (p,) = err.value.problems
    assert (p.field, p.value) == ("equivalence.H100", "p5.96xlarge")
    assert "is not an instance AWS sells in us-east-1" in p.message and "p5.48xlarge" in p.fix


def test_a_replica_no_instance_can_hold_is_refused_in_preflight(platform_root):
    # 8 x L40S holds a 70B model, but no instance has 8 L40S (and PCIe does not carry TP 8)
    scen = (
        "scenarios=[{fleet: onprem, model: 70B, params_b: 70, replicas: {L40S: {gpus: 8}}, "
        "source: t}]"
    )
    cfg = load_config(CostConfig, DEMO, [scen, "newest_bench=false"])
    with pytest.raises(ConfigError) as err:
        preflight(cfg, ledger=Ledger())
    (p,) = err.value.problems
    assert (p.field, p.value) == ("scenarios: replica of 8 x L40S", "8 x L40S 48 GB")
    assert "no instance in the prices can hold this replica" in p.message
    assert p.fix.startswith(
        "use fewer GPUs per replica, pin one with `equivalence`, or pricing=live"
    )


def test_ledger_usage_on_an_unknown_gpu_is_refused_in_preflight(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = dt.datetime(2026, 11, 27, 12)
    wid = ledger.start("serve", "x", started_at=now - dt.timedelta(hours=2))
    ledger.finish(wid, "SUCCEEDED", [Allocation("MI300X", gpus=1, nodes=0.125)], ended_at=now)
    cfg = load_config(CostConfig, DEMO, ["newest_bench=false"])
    with pytest.raises(ConfigError) as err:
        preflight(cfg, now=now, ledger=ledger)
    problem = err.value.problems[0]
    assert (problem.field, problem.value) == ("ledger accelerator_type", "MI300X")
    assert "equivalence: {MI300X:" in problem.fix


def test_the_api_prices_default_to_the_sourced_list_prices():
    cfg = load_config(CostConfig, REPO / "jobs/configs/cost/onprem.yaml")
    team, mini = cfg.api
    assert (team.name, team.input_usd_per_1m, team.output_usd_per_1m) == (
        "fine-tuned gpt-4o",
        3.75,
        15.0,
    )
    assert "OpenAI list prices" in team.source and "April 2026" in team.source
    # the workload's prompt shape: 1024 prompt tokens per 256 output: 15 + 4 x 3.75 = 30
    w = cfg.workload
    assert team.per_1m_output(w.prompt_tokens, w.output_tokens) == pytest.approx(30.0)
    assert mini.per_1m_output(w.prompt_tokens, w.output_tokens) == pytest.approx(1.2 + 4 * 0.3)
