"""The node inventory: each on-prem node (GPUs, CPUs, RAM, price, power) and the site's cost
figures, loaded from ``cluster/inventory.yaml`` into typed objects.

    from cluster.inventory import load_inventory
    inv = load_inventory(fleet="onprem")
    inv.gpus_by_type()      # {"H100": 16, "L40S": 4}
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cluster.config import ConfigError, Problem, problems_from_validation

DEFAULT_PATH = Path(__file__).with_name("inventory.yaml")
CPU_TYPE = "CPU"  # accelerator type of a node without GPUs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GPU(_Strict):
    model: str = Field(description="GPU model as Ray names it (H100, H200, A100-80GB, L40S, ...)")
    count: int = Field(ge=1, description="GPUs in the node")
    memory_gb: float = Field(gt=0, description="memory per GPU, GB")
    tdp_w: float = Field(gt=0, description="board power per GPU, W")


class Node(_Strict):
    name: str = Field(min_length=1, description="unique node name")
    role: Literal["head", "worker"] = "worker"
    address: str = Field(default="127.0.0.1", description="private IP the node is reached on")
    gpu: GPU | None = Field(default=None, description="GPUs in the node; omit for CPU-only")
    cpus: int = Field(ge=1)
    ram_gb: float = Field(gt=0)
    purchase_usd: float = Field(ge=0, description="what the node cost, all in")
    purchase_date: dt.date
    power_w: float = Field(gt=0, description="maximum power draw of the whole node, W")

    @property
    def accelerator_type(self) -> str:
        return self.gpu.model if self.gpu else CPU_TYPE

    @property
    def gpu_count(self) -> int:
        return self.gpu.count if self.gpu else 0


class Site(_Strict):
    name: str = "site"
    currency: Literal["USD"] = "USD"
    electricity_usd_per_kwh: float = Field(ge=0)
    pue: float = Field(ge=1.0, le=3.0, description="power usage effectiveness of the facility")
    avg_power_fraction: float = Field(gt=0, le=1, description="average draw / max draw")
    colocation_usd_per_kw_month: float = Field(ge=0)
    support_pct_per_year: float = Field(ge=0, le=100)
    amortization_years: float = Field(gt=0, le=15)
    staff_usd_per_node_year: float = Field(ge=0, description="platform staff per server a year")
    setup_usd: float = Field(ge=0, description="one-off setup of a fleet: racking, install")
    network_storage_pct: float = Field(
        default=0, ge=0, le=100, description="switches, cabling and storage, % of capex"
    )
    spares_pct: float = Field(default=0, ge=0, le=100, description="spares bought, % of capex")
    cost_of_capital_pct: float = Field(
        default=0, ge=0, le=50, description="what cash paid up front would earn a year, %"
    )
    residual_value_pct: float = Field(
        default=0, ge=0, le=100, description="resale at the horizon, % of the remaining book value"
    )


class Inventory(_Strict):
    site: Site
    fleet: str
    nodes: list[Node] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Inventory:
        dupes = [n for n, c in Counter(node.name for node in self.nodes).items() if c > 1]
        if dupes:
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        if sum(node.role == "head" for node in self.nodes) != 1:
            raise ValueError("a fleet needs exactly one node with role: head")
        return self

    @property
    def head(self) -> Node:
        return next(n for n in self.nodes if n.role == "head")

    def gpus_by_type(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for node in self.nodes:
            if node.gpu:
                out[node.gpu.model] += node.gpu.count
        return dict(out)

    def nodes_by_type(self) -> dict[str, int]:
        return dict(Counter(node.accelerator_type for node in self.nodes))

    def capex_usd(self) -> float:
        return sum(node.purchase_usd for node in self.nodes)

    def summary(self) -> str:
        gpus = ", ".join(f"{c}x{t}" for t, c in self.gpus_by_type().items()) or "no GPUs"
        return (
            f"fleet {self.fleet}: {len(self.nodes)} nodes, {gpus}, "
            f"capex ${self.capex_usd():,.0f}, site {self.site.name}"
        )


def fleets(path: str | Path = DEFAULT_PATH) -> list[str]:
    """Names of the fleets defined in an inventory file."""
    return sorted((yaml.safe_load(Path(path).read_text()) or {}).get("fleets", {}))


def load_inventory(path: str | Path = DEFAULT_PATH, fleet: str = "onprem") -> Inventory:
    """Load one fleet and the site figures; raises ConfigError naming every bad field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            str(path),
            [Problem("inventory", str(path), "no such file", "pass the path of an inventory YAML")],
        )
    raw = yaml.safe_load(path.read_text()) or {}
    known = sorted(raw.get("fleets") or {})
    if fleet not in known:
        raise ConfigError(
            str(path),
            [
                Problem(
                    "fleet",
                    fleet,
                    "is not defined in the inventory",
                    f"use one of: {', '.join(known) or '(none defined)'}",
                )
            ],
        )
    data = {"site": raw.get("site"), "fleet": fleet, "nodes": raw["fleets"][fleet]}
    try:
        return Inventory.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(path), problems_from_validation(Inventory, err)) from None
