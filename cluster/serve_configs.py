"""``serve/config.yaml`` adjusted for the bare-metal fleet and for Kubernetes: the generated
``serveConfigV2`` of ``k8s/rayservice.yaml`` (a test fails when it is stale).

    python -m cluster.onprem serve-config --target onprem
    python -m cluster.onprem k8s-serve [--check]
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml

from cluster.llm import placement

REPO = Path(__file__).resolve().parents[1]
SERVE_CONFIG = REPO / "serve" / "config.yaml"
RAYSERVICE = REPO / "k8s" / "rayservice.yaml"


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
    """The ``serveConfigV2`` string of ``k8s/rayservice.yaml``."""
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
