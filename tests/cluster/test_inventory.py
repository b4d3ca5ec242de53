import pytest
import yaml

from cluster.config import ConfigError
from cluster.inventory import DEFAULT_PATH, fleets, load_inventory


def test_shipped_inventory_has_both_fleets():
    assert set(fleets()) >= {"onprem", "laptop"}
    onprem = load_inventory(fleet="onprem")
    assert onprem.gpus_by_type() == {"H100": 16, "L40S": 4}
    assert onprem.nodes_by_type() == {"CPU": 1, "H100": 2, "L40S": 1}
    assert onprem.head.name == "head-01"
    assert onprem.capex_usd() == pytest.approx(9000 + 2 * 289000 + 48000)
    laptop = load_inventory(fleet="laptop")
    assert laptop.gpus_by_type() == {} and laptop.nodes[0].accelerator_type == "CPU"


def test_every_example_figure_cites_a_source():
    for line in DEFAULT_PATH.read_text().splitlines():
        if any(k in line for k in ("purchase_usd:", "power_w:", "pue:", "electricity")):
            assert "#" in line, f"figure without a source comment: {line.strip()}"


def test_bad_inventory_lists_every_problem(tmp_path):
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    node = raw["fleets"]["onprem"][1]
    node["gpu"]["count"] = 0
    node["colour"] = "red"
    raw["site"]["pue"] = 0.5
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    fields = {p.field for p in info.value.problems}
    assert {"nodes.1.gpu.count", "nodes.1.colour", "site.pue"} <= fields


def test_duplicate_names_and_missing_head(tmp_path):
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    nodes = raw["fleets"]["onprem"]
    nodes[2]["name"] = nodes[1]["name"]
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="repeated: h100-01"):
        load_inventory(path)
    nodes[2]["name"] = "other"
    nodes[0]["role"] = "worker"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="exactly one node with role: head"):
        load_inventory(path)


def test_unknown_fleet_names_the_known_ones():
    with pytest.raises(ConfigError, match="use one of: l40s, laptop, onprem"):
        load_inventory(fleet="mars")
