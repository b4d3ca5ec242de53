"""``serve/config.yaml`` adjusted for the bare-metal fleet and for Kubernetes (the generated
``serveConfigV2`` of ``k8s/base/rayservice.yaml``), the 8B model's Serve configs sized for each GPU
type of the inventory, and the wait for the models a Serve config needs. Tests fail when a
generated file is stale.

    python -m cluster.onprem serve-config --target onprem
    python -m cluster.onprem k8s-serve [--check]
    python -m cluster.onprem serve-8b [--check]       # serve/configs/llama3_8b_{h100,l40s}.yaml
    python -m cluster.onprem wait-models [--config serve/config.yaml]
"""

from __future__ import annotations

import copy
import textwrap
import time
from pathlib import Path
from typing import Any, Literal

import yaml

from cluster.config import ConfigError, Problem
from cluster.gpu_fit import (
    KV_TOKENS,
    LLAMA_3_1_8B,
    OVERHEAD_GB,
    UTILIZATION,
    ModelShape,
    per_gpu_gb,
    tensor_parallel,
)
from cluster.inventory import Inventory, Node, load_inventory
from cluster.llm import placement

REPO = Path(__file__).resolve().parents[1]
SERVE_CONFIG = REPO / "serve" / "config.yaml"
RAYSERVICE = REPO / "k8s" / "base" / "rayservice.yaml"
GPUS_8B = ("H100", "L40S")  # the GPU types of the example fleet that serve the 8B model


def serve_config(
    base: dict[str, Any],
    target: Literal["onprem", "k8s"],
    head_ip: str | None = None,
    llm_gpus: float = 1,
) -> dict[str, Any]:
    """``serve/config.yaml`` with only what must differ on GPUs and on the target network:
    the bind address, and each model's vLLM engine placed on ``llm_gpus`` GPU(s) per
    tensor-parallel rank instead of a CPU, with CUDA graphs (no ``enforce_eager``)."""
    out = copy.deepcopy(base)
    http = out.setdefault("http_options", {})
    if target == "k8s":
        http["host"] = "0.0.0.0"  # inside the pod; see K8S_SERVE_HEADER
    else:
        # One cluster-wide host: only the head can bind the head's private address.
        http["host"], out["proxy_location"] = head_ip, "HeadOnly"
    for app in out["applications"]:
        for llm in (app.get("args") or {}).get("llm_configs", []):
            engine = llm.setdefault("engine_kwargs", {})
            engine.pop("enforce_eager", None)
            tp = int(engine.get("tensor_parallel_size", 1))
            llm["placement_group_config"] = placement(cpus=1, gpus=llm_gpus, tensor_parallel=tp)
    return out


K8S_SERVE_HEADER = """\
# GENERATED from serve/config.yaml by `python -m cluster.onprem k8s-serve`; do not edit here.
# Differs only in: http_options.host 0.0.0.0, because the Serve Service forwards to the pod IP
# and the pod network is private to the cluster (nothing is exposed beyond the ClusterIP
# Service); and each model's vLLM engine on 1 GPU (placement_group_config) with CUDA graphs
# (no enforce_eager).
"""


def k8s_serve_config_v2(path: Path = SERVE_CONFIG) -> str:
    """The ``serveConfigV2`` string of ``k8s/base/rayservice.yaml``."""
    config = serve_config(yaml.safe_load(path.read_text()), "k8s")
    return K8S_SERVE_HEADER + yaml.safe_dump(config, sort_keys=False, width=96)


def embed_block(text: str, key: str, value: str) -> str:
    """Replace the ``key: |`` literal block in a YAML text, keeping everything around it."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{key}: |")
    indent = len(lines[start]) - len(lines[start].lstrip()) + 2
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) >= indent
    ):
        end += 1
    block = [(" " * indent + line).rstrip() + "\n" for line in value.splitlines()]
    return "".join(lines[: start + 1] + block + lines[end:])


def write_rayservice(path: Path = RAYSERVICE, check: bool = False) -> bool:
    current = path.read_text()
    text = embed_block(current, "serveConfigV2", k8s_serve_config_v2())
    if not check and text != current:
        path.write_text(text)
    return text == current


# -- the 8B model on the fleet's GPUs ---------------------------------------------------------

SERVE_8B = {gpu: REPO / "serve" / "configs" / f"llama3_8b_{gpu.lower()}.yaml" for gpu in GPUS_8B}
# What does not depend on the GPU: the model store name, the fine-tune's adapter
# (jobs/configs/finetune/llama3_8b_lora.yaml), the batch size and the autoscaling policy.
LLM_8B: dict[str, Any] = {
    "model_loading_config": {
        "model_id": "llama-3.1-8b-instruct",
        "model_source": "llama-3.1-8b-instruct",  # the model store name (pull/llama3_8b.yaml)
    },
    "adapters": {"support": "runs/llama3-8b-support/adapter"},
    "engine_kwargs": {
        "dtype": "bfloat16",
        "max_model_len": 8192,
        "max_num_seqs": 64,
        "gpu_memory_utilization": UTILIZATION,
        "enable_prefix_caching": True,
    },
    "deployment_config": {
        "ray_actor_options": {"num_cpus": 0},
        "max_ongoing_requests": 64,
        "max_queued_requests": 256,
        "graceful_shutdown_timeout_s": 120,
        "autoscaling_config": {
            "min_replicas": 1,
            "initial_replicas": 1,
            "target_ongoing_requests": 32,
            "upscale_delay_s": 30,
            "downscale_delay_s": 600,
        },
    },
}


def gpu_node(inv: Inventory, gpu: str) -> Node:
    """The fleet's smallest node with ``gpu`` GPUs (fewest, then least memory): what a replica
    must fit on wherever it lands."""
    nodes = [n for n in inv.nodes if n.gpu and n.gpu.model == gpu]
    if not nodes:
        have = sorted({n.gpu.model for n in inv.nodes if n.gpu}) or ["none"]
        raise ConfigError(
            f"fleet {inv.fleet}",
            [Problem("gpu", gpu, f"no node has this GPU (the fleet has: {', '.join(have)})")],
        )
    return min(nodes, key=lambda n: (n.gpu.count, n.gpu.memory_gb))  # type: ignore[union-attr]


def serve_8b_config(inv: Inventory, gpu: str, model: ModelShape = LLAMA_3_1_8B) -> dict[str, Any]:
    """The 8B Serve config for one GPU type of the fleet: tensor parallel from the GPU's memory
    (cluster/gpu_fit.py), one placement bundle per rank packed on one server, up to one
    server's worth of replicas, the proxy on the head's private address. Pure."""
    node = gpu_node(inv, gpu)
    assert node.gpu is not None
    tp = tensor_parallel(model, node.gpu.memory_gb, node.gpu.count)
    llm = copy.deepcopy(LLM_8B)
    llm["engine_kwargs"]["tensor_parallel_size"] = tp
    llm["placement_group_config"] = {
        "bundles": [{"GPU": 1, "CPU": 4} for _ in range(tp)],
        "strategy": "STRICT_PACK",  # every rank on one server: NVLink/PCIe, not the network
    }
    llm["accelerator_type"] = gpu
    llm["deployment_config"]["autoscaling_config"]["max_replicas"] = node.gpu.count // tp
    return {
        "proxy_location": "HeadOnly",  # only the head can bind the head's private address
        "http_options": {"host": inv.head.address, "port": 8000},
        "applications": [
            {
                "name": "llm",
                "route_prefix": "/",
                "import_path": "serve.app:build_app",
                "args": {
                    "api_key_env": "ONPREM_API_KEY",  # every node exports it (docs/onprem.md)
                    "llm_configs": [llm],
                    "ingress_deployment_config": {"max_ongoing_requests": 1024},
                },
            }
        ],
    }


def dump_serve_8b(inv: Inventory, gpu: str, model: ModelShape = LLAMA_3_1_8B) -> str:
    """The config file's text: a header with the command that deploys it and the sizing."""
    config = serve_8b_config(inv, gpu, model)
    node = gpu_node(inv, gpu)
    assert node.gpu is not None
    llm = config["applications"][0]["args"]["llm_configs"][0]
    tp = llm["engine_kwargs"]["tensor_parallel_size"]
    usable = node.gpu.memory_gb * UTILIZATION - OVERHEAD_GB
    kv_gb = KV_TOKENS * model.kv_bytes_per_token / 1e9
    path = SERVE_8B[gpu].relative_to(REPO)
    gpus = f"{node.gpu.count} x {node.gpu.memory_gb:g} GB"
    paragraphs = [
        f"GENERATED from cluster/inventory.yaml (fleet {inv.fleet}, {gpu} nodes: {gpus}) and "
        "cluster/gpu_fit.py by `python -m cluster.onprem serve-8b`. Edit those or "
        "cluster/serve_configs.py, not this file: a test fails when it is stale.",
        f"Ray Serve config (serve/config.yaml's format): {model.name} and its support LoRA "
        f"adapter (served as {model.name}:support) on {gpu} GPUs. First pull the model "
        "(jobs/configs/pull/llama3_8b.yaml) and fine-tune it "
        "(jobs/configs/finetune/llama3_8b_lora.yaml); then, with the fleet's exports "
        "(docs/onprem.md, 'The token and the API key'):",
        f"  python -m serve deploy --config {path}\n"
        f"  serve deploy --address http://{inv.head.address}:8265 {path}   # Ray's own CLI",
        f"Tensor parallel {tp} (cluster/gpu_fit.py): the bf16 weights "
        f"({model.weights_gb:.1f} GB) and a {KV_TOKENS:,}-token KV cache ({kv_gb:.1f} GB at "
        f"{model.kv_bytes_per_token // 1024} KiB a token) make {per_gpu_gb(model, tp):.1f} GB "
        f"per GPU over {tp} GPU(s), within the {usable:.1f} GB usable of a "
        f"{node.gpu.memory_gb:g} GB {gpu} (x {UTILIZATION}, less {OVERHEAD_GB:g} GB for CUDA "
        f"graphs and activations); up to {node.gpu.count // tp} replicas, one server's worth.",
    ]
    lines = []
    for text in paragraphs:
        wrapped = text.splitlines() if text.startswith("  ") else textwrap.wrap(text, 94)
        lines += [f"# {line}" for line in wrapped] + ["#"]
    lines.pop()
    body = yaml.safe_dump(config, sort_keys=False, width=96)
    return "\n".join(lines) + "\n" + body


def write_serve_8b(fleet: str = "onprem", check: bool = False) -> bool:
    """Write (or with ``check`` only compare) both 8B configs; True when both were current."""
    inv = load_inventory(fleet=fleet)
    fresh = True
    for gpu, path in SERVE_8B.items():
        text = dump_serve_8b(inv, gpu)
        current = path.read_text() if path.is_file() else None
        if not check and current != text:
            path.write_text(text)
        fresh &= current == text
    return fresh


# -- waiting for the models a Serve config needs -----------------------------------------------


def peak_cpus(config: dict[str, Any]) -> float:
    """The logical CPUs a Serve config's placements hold when every model runs its most
    replicas (``autoscaling_config.max_replicas``, else ``num_replicas``, else 1): each replica's
    engine bundles plus the replica actor's own ``num_cpus``; the ingress's too (pure)."""
    total = 0.0
    for app in config.get("applications") or []:
        args = app.get("args") or {}
        for llm in args.get("llm_configs") or []:
            dep = llm.get("deployment_config") or {}
            auto = dep.get("autoscaling_config") or {}
            replicas = auto.get("max_replicas") or dep.get("num_replicas") or 1
            bundles = (llm.get("placement_group_config") or {}).get("bundles") or []
            own = (dep.get("ray_actor_options") or {}).get("num_cpus", 0)
            total += replicas * (sum(float(b.get("CPU", 0)) for b in bundles) + float(own))
        ingress = args.get("ingress_deployment_config") or {}
        total += float((ingress.get("ray_actor_options") or {}).get("num_cpus", 0))
    return total


def required_models(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``("model" | "adapter", ref)`` for every local model and adapter a Serve config loads
    (remote URIs such as s3:// are the engine's business). Pure."""
    out = []
    for app in config.get("applications", []):
        for llm in (app.get("args") or {}).get("llm_configs", []):
            loading = llm.get("model_loading_config") or {}
            refs = [("model", loading.get("model_source") or loading.get("model_id", ""))]
            refs += [("adapter", ref) for ref in (llm.get("adapters") or {}).values()]
            out += [(kind, ref) for kind, ref in refs if ref and "://" not in ref]
    return out


def missing_models(config: dict[str, Any]) -> list[str]:
    """What the model store cannot give yet, each as the store's own message with its fix."""
    from cluster.store import ModelStore, StoreError

    store, out = ModelStore(), []
    for kind, ref in required_models(config):
        try:
            store.resolve(ref) if kind == "model" else store.resolve_adapter(ref)
        except StoreError as exc:
            out.append(str(exc))
    return out


def wait_for_models(
    config: dict[str, Any],
    timeout_s: float | None = None,
    interval_s: float = 30.0,
    clock: Any = time.monotonic,
    sleep: Any = time.sleep,
) -> list[str]:
    """Block until every model and adapter of ``config`` is in the store (checked against its
    manifest), printing what is missing; what is still missing when ``timeout_s`` runs out."""
    deadline = None if timeout_s is None else clock() + timeout_s
    while True:
        missing = missing_models(config)
        if not missing or (deadline is not None and clock() >= deadline):
            return missing
        print(f"waiting for {len(missing)} model(s): " + " | ".join(missing), flush=True)
        sleep(interval_s)
