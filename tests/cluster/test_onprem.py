"""The bare-metal cluster config: rendered from the inventory, committed up to date, accepted by
Ray's own cluster-launcher validator, private addresses only, every node's GPUs declared.

    pytest tests/cluster/test_onprem.py
"""

import ipaddress
import re
import shlex
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cluster import node_start, onprem
from cluster.config import ConfigError
from cluster.inventory import GPU, load_inventory
from cluster.node_start import gpu_problems
from cluster.onprem import (
    ONPREM_YAML,
    OnpremSettings,
    dump_onprem,
    ray_start_args,
    render_onprem,
)
from cluster.serve_configs import serve_config

REPO = Path(__file__).resolve().parents[2]
H100_SMI = ["NVIDIA H100 80GB HBM3"] * 8


@pytest.fixture(scope="module")
def inv():
    return load_inventory(fleet="onprem")


@pytest.fixture(scope="module")
def committed() -> str:
    return ONPREM_YAML.read_text()


def workers(inv):
    return [n for n in inv.nodes if n.role == "worker"]


def test_rendered_from_the_inventory(inv):
    config = render_onprem(inv)
    assert config["provider"] == {
        "type": "local",
        "head_ip": "10.10.0.10",
        "worker_ips": ["10.10.0.11", "10.10.0.12", "10.10.0.21"],
    }
    assert config["min_workers"] == config["max_workers"] == 3
    mounts = config["file_mounts"]
    assert mounts["~/onprem-llm/cluster"] == "./cluster"
    assert all((REPO / local).exists() for local in mounts.values())


def test_committed_file_is_up_to_date(inv, committed):
    assert committed == dump_onprem(inv), "stale: run `python -m cluster render-onprem`"
    assert onprem.main(["render-onprem", "--check"]) == 0


def test_rays_own_validator_accepts_it_and_is_strict(committed):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(committed)
    prepared = prepare_config(config)  # local provider: one node type, workers from worker_ips
    validate_config(prepared)
    node_type = prepared["available_node_types"][prepared["head_node_type"]]
    assert node_type["min_workers"] == node_type["max_workers"] == 3
    with pytest.raises(Exception, match="setup_comands"):
        validate_config(prepare_config({**config, "setup_comands": []}))


def test_private_addresses_only(inv, committed):
    assert "0.0.0.0" not in committed
    found = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", committed))
    assert found == {n.address for n in inv.nodes}
    assert all(ipaddress.ip_address(a).is_private for a in found)
    head_cmd = yaml.safe_load(committed)["head_start_ray_commands"][-1]
    for flag in ("--dashboard-host=", "--node-ip-address="):
        assert f"{flag}{inv.head.address}" in head_cmd
    for node in inv.nodes:
        assert f"--node-ip-address={node.address}" in ray_start_args(inv, node, OnpremSettings())


def test_laptop_fleet_is_refused():
    with pytest.raises(ConfigError) as info:
        render_onprem(load_inventory(fleet="laptop"))
    assert info.value.problems[0].value == "127.0.0.1"


def test_every_worker_declares_its_gpus_and_accelerator_type(inv, committed):
    config = yaml.safe_load(committed)
    assert config["worker_start_ray_commands"][-1].endswith(
        "-m cluster.onprem node-start --fleet onprem --root /mnt/onprem"
    )
    for node in workers(inv):
        args = ray_start_args(inv, node, OnpremSettings())
        assert f"--num-gpus={node.gpu.count}" in args
        assert f'--resources={{"accelerator_type:{node.gpu.model}": 1}}' in args
        labels = f"--labels=onprem/node={node.name},onprem/accelerator={node.gpu.model}"
        assert labels in args
        assert f"--address={inv.head.address}:6379" in args
        env = onprem.node_env(inv, node, OnpremSettings())
        assert env["ONPREM_ACCELERATOR_TYPE"] == node.gpu.model
        # the one address jobs send the platform's key to: Serve on the head
        assert env["ONPREM_API_URL"] == f"http://{inv.head.address}:8000"
        summary = (
            f"{node.name} ({node.address}): --num-cpus={node.cpus} --num-gpus={node.gpu.count}"
        )
        assert f"{summary} accelerator_type:{node.gpu.model}" in committed


def test_head_keeps_token_auth_and_the_platform_env(inv, committed):
    config = yaml.safe_load(committed)
    cmd = config["head_start_ray_commands"][-1]
    for part in (
        "RAY_AUTH_MODE=token",
        "RAY_AUTH_TOKEN_PATH=/mnt/onprem/.cluster/auth_token",
        "ONPREM_ROOT=/mnt/onprem",
        "OMP_WAIT_POLICY=PASSIVE",
        "ONPREM_ACCELERATOR_TYPE=CPU",
        "--num-gpus=0",
        "--labels=onprem/node=head-01,onprem/accelerator=CPU",
        "--autoscaling-config=~/ray_bootstrap_config.yaml",
    ):
        assert part in cmd
    setup = " ".join(config["head_setup_commands"])
    assert "umask 077" in setup and "chmod 600 /mnt/onprem/.cluster/auth_token" in setup


def test_commands_with_colon_space_survive_a_yaml_round_trip(inv, committed):
    for key, value in yaml.safe_load(committed).items():
        if key.endswith("_commands"):
            assert all(isinstance(cmd, str) for cmd in value), key
    # A GPU head puts `{"accelerator_type:H100": 1}` into the head command itself.
    gpu = GPU(model="H100", count=8, memory_gb=80, tdp_w=700)
    nodes = [n.model_copy(update={"gpu": gpu}) if n.role == "head" else n for n in inv.nodes]
    gpu_head = inv.model_copy(update={"nodes": nodes})
    text = dump_onprem(gpu_head)
    cmd = yaml.safe_load(text)["head_start_ray_commands"][-1]
    assert isinstance(cmd, str) and "'--resources={\"accelerator_type:H100\": 1}'" in cmd
    assert re.search(r"^- >-$", text, re.MULTILINE)
    assert yaml.safe_load(text) == render_onprem(gpu_head)


def test_gpu_check_compares_the_inventory_with_nvidia_smi(inv):
    h100, l40s = workers(inv)[0], workers(inv)[-1]
    assert gpu_problems(h100, H100_SMI) == []
    assert gpu_problems(l40s, ["NVIDIA L40S"] * 4) == []
    assert [p.field for p in gpu_problems(h100, H100_SMI[:7])] == ["h100-01.gpu.count"]
    assert [p.field for p in gpu_problems(h100, ["NVIDIA L40S"] * 8)] == ["h100-01.gpu.model"]
    assert "nvidia-smi is not available" in gpu_problems(h100, None)[0].message
    assert gpu_problems(inv.head, None) == []
    assert gpu_problems(inv.head, ["NVIDIA L4"])[0].field == "head-01.gpu"


def test_node_start_finds_the_node_and_prints_its_command(monkeypatch, capsys):
    import psutil

    addrs = [
        SimpleNamespace(family=socket.AF_INET, address="10.10.0.11"),
        SimpleNamespace(family=psutil.AF_LINK, address="02:fc:00:00:00:01"),
    ]
    monkeypatch.setattr(psutil, "net_if_addrs", lambda: {"eth1": addrs})
    monkeypatch.setattr(node_start, "_smi_names", lambda: H100_SMI)
    monkeypatch.setattr(node_start.os, "cpu_count", lambda: 224)
    assert onprem.main(["node-start", "--dry-run"]) == 0
    printed = shlex.split(capsys.readouterr().out)
    assert printed[1:3] == ["start", "--address=10.10.0.10:6379"]
    assert "--num-gpus=8" in printed
    monkeypatch.setattr(node_start, "_smi_names", lambda: H100_SMI[:4])
    assert onprem.main(["node-start", "--dry-run"]) == 2
    assert "nvidia-smi lists 4" in capsys.readouterr().err


def test_docs_manual_commands_are_the_generators_output(inv):
    """Install, head setup, every node's start and the workstation's copy of the token and the
    API key in docs/onprem.md are what `python -m cluster.onprem docs` writes, from the same
    functions as cluster/onprem.yaml."""
    text = (REPO / "docs" / "onprem.md").read_text()
    assert onprem.render_docs(text, inv) == text, "stale: run `python -m cluster.onprem docs`"
    assert onprem.main(["docs", "--check"]) == 0
    blocks = onprem.manual_blocks(inv)
    config = render_onprem(inv)
    assert blocks["install"].splitlines()[:2] == config["setup_commands"]
    assert blocks["head-setup"].splitlines() == config["head_setup_commands"]
    for node in inv.nodes:  # the environment the launcher exports, line by line
        for key, value in onprem.node_env(inv, node, OnpremSettings()).items():
            assert f"{key}={shlex.quote(value)}" in blocks["start"]
    assert "ONPREM_MULTI_NODE=1" in blocks["start"] and "ONPREM_API_KEY" in blocks["start"]
    work = blocks["workstation"]
    assert "scp ray@10.10.0.10:/mnt/onprem/.cluster/auth_token" in work
    assert "scp ray@10.10.0.10:/mnt/onprem/.cluster/api_key" in work
    assert "RAY_API_SERVER_ADDRESS=http://10.10.0.10:8265" in work


def test_a_stale_generated_block_is_found_and_rewritten(inv):
    text = (REPO / "docs" / "onprem.md").read_text()
    stale = text.replace("ONPREM_MULTI_NODE=1 \\\n", "", 1)
    assert stale != text and onprem.render_docs(stale, inv) == text
    missing = re.sub(
        r"<!-- generated: python -m cluster\.onprem docs \(workstation\) -->", "", text
    )
    with pytest.raises(ValueError, match="workstation"):
        onprem.render_docs(missing, inv)


def test_every_node_installs_the_cuda_engine(inv):
    """The launcher's setup and the manual install put vLLM's CUDA build (Ray's llm extra) on
    every node, the CPU head included (its job drivers and ingress import ray.serve.llm)."""
    [_, install] = render_onprem(inv)["setup_commands"]
    words = shlex.split(install.split("&&")[-1])
    assert words[:2] == [".venv/bin/pip", "install"]
    assert words[-4:] == ["-c", "constraints.txt", "-e", ".[cuda]"]
    manual = onprem.manual_blocks(inv)["install"]
    assert install in manual.splitlines()
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert extras["optional-dependencies"]["cuda"] == ["ray[llm]==2.60.0"]


def test_node_start_and_the_renderer_do_not_import_each_other():
    import ast

    for module in ("node_start", "fleet"):
        tree = ast.parse((REPO / "cluster" / f"{module}.py").read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "cluster.onprem" not in names, module


def test_docs_show_each_nodes_exact_start_command(inv):
    docs = re.sub(r"\s*\\\n\s*", " ", (REPO / "docs" / "onprem.md").read_text())
    for node in inv.nodes:
        assert shlex.join(ray_start_args(inv, node, OnpremSettings())) in docs, node.name


def test_serve_config_for_the_fleet_binds_the_head_private_address(inv):
    from ray.serve.schema import ServeDeploySchema

    base = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    config = serve_config(base, "onprem", head_ip=inv.head.address)
    ServeDeploySchema.model_validate(config)
    assert config["http_options"]["host"] == "10.10.0.10"
    assert config["proxy_location"] == "HeadOnly"
    for llm in config["applications"][0]["args"]["llm_configs"]:
        assert llm["placement_group_config"]["bundles"] == [{"GPU": 1, "CPU": 1}]
        assert "enforce_eager" not in llm["engine_kwargs"]
    assert base["http_options"]["host"] == "127.0.0.1"  # the input is not modified


def test_the_70b_tensor_parallel_config_in_the_docs_is_a_valid_serve_llm_config():
    from ray.serve.llm import LLMConfig
    from ray.serve.schema import ServeDeploySchema

    from serve.app import AppArgs

    text = (REPO / "docs" / "onprem.md").read_text()
    block = re.search(r"```yaml serve-llm-config\n(.*?)```", text, re.S).group(1)
    raw = yaml.safe_load(block)
    AppArgs.model_validate({"llm_configs": [raw]})
    cfg = LLMConfig.model_validate({k: v for k, v in raw.items() if k != "adapters"})
    tp = cfg.engine_kwargs["tensor_parallel_size"]
    bundles = cfg.placement_group_config["bundles"]
    assert tp == 8 and len(bundles) == tp and all(b["GPU"] == 1 for b in bundles)
    assert cfg.accelerator_config.kind == "gpu"
    serve_cfg = {
        "applications": [
            {"name": "llm", "import_path": "serve.app:build_app", "args": {"llm_configs": [raw]}}
        ]
    }
    ServeDeploySchema.model_validate(serve_cfg)


def test_the_setup_makes_an_api_key_beside_the_token_and_every_node_exports_it(inv):
    config = render_onprem(inv)
    setup = " ".join(config["head_setup_commands"])
    assert "umask 077" in setup and "chmod 600 /mnt/onprem/.cluster/api_key" in setup
    starts = config["head_start_ray_commands"][-1] + config["worker_start_ray_commands"][-1]
    assert starts.count('export ONPREM_API_KEY="$(cat /mnt/onprem/.cluster/api_key)"') == 2
