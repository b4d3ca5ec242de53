"""Which AWS instance does the same work as an on-prem GPU or CPU, and what it costs per unit.

Each on-prem GPU model maps to the AWS family that carries the same GPU (the instance used for
prices is named here and can be overridden per model in the config's ``equivalence``). A unit
is one GPU for GPU types and one vCPU for CPU-only nodes, so prices compare per GPU-hour or per
vCPU-hour whatever the node's size::

    rate = unit_rate("H100", book, "us-east-1")        # p5.48xlarge / 8 GPUs
    rate.prices["on-demand"].hourly_usd                # 6.88 USD per GPU-hour

CPU-only nodes (the laptop, a head node) map to a general-purpose instance priced per vCPU:
``m7i.xlarge`` (4 vCPU, 16 GiB, 4th-gen Xeon) by default, because an on-prem CPU node is an
x86 server with ~4 GB per core, which is the m family's ratio (c7i has 2 GB per vCPU, r7i 8).
A vCPU is a hardware thread; Ray's CPU count on a node is its threads, so the units match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cluster.config import Problem
from cluster.inventory import CPU_TYPE
from jobs.cost.prices import Price, PriceBook

DEFAULT_GPU_INSTANCES = {
    "H100": "p5.48xlarge",  # 8 x H100 80 GB
    "H200": "p5en.48xlarge",  # 8 x H200 141 GB
    "A100-80GB": "p4de.24xlarge",  # 8 x A100 80 GB
    "A100-40GB": "p4d.24xlarge",  # 8 x A100 40 GB
    "L40S": "g6e.12xlarge",  # 4 x L40S: the shape of a 4-card server (g6e.xlarge is 1 card)
    "L4": "g6.xlarge",  # 1 x L4
    "A10G": "g5.xlarge",  # 1 x A10G
    "T4": "g4dn.xlarge",  # 1 x T4
    "V100": "p3.2xlarge",  # 1 x V100 16 GB
}
DEFAULT_CPU_INSTANCE = "m7i.xlarge"
# AWS's GPU name (describe_instance_types) for each on-prem model, to catch a wrong override.
_AWS_GPU_NAME = {"A100-80GB": "A100", "A100-40GB": "A100"}


class EquivalenceError(ValueError):
    """An accelerator type that cannot be priced in the cloud; carries the problems."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.render() for p in problems))


@dataclass(frozen=True)
class UnitRate:
    """What AWS charges for one unit (a GPU or a vCPU) of an accelerator type, per option:
    the instance's prices divided by the units it holds."""

    accelerator_type: str
    instance_type: str
    unit: str  # "GPU" or "vCPU"
    units_per_instance: int
    prices: dict[str, Price]  # option -> price per unit
    notes: tuple[str, ...] = ()

    @property
    def on_demand(self) -> float:
        return self.prices["on-demand"].hourly_usd


def instance_for(
    accelerator_type: str, overrides: Mapping[str, str], cpu_instance: str = DEFAULT_CPU_INSTANCE
) -> str:
    """The AWS instance type that prices ``accelerator_type``; raises EquivalenceError."""
    if accelerator_type == CPU_TYPE:
        return overrides.get(CPU_TYPE, cpu_instance)
    if accelerator_type in overrides:
        return overrides[accelerator_type]
    if accelerator_type in DEFAULT_GPU_INSTANCES:
        return DEFAULT_GPU_INSTANCES[accelerator_type]
    raise EquivalenceError([unknown_model_problem(accelerator_type)])


def unknown_model_problem(model: str, where: str = "equivalence") -> Problem:
    known = ", ".join(sorted(DEFAULT_GPU_INSTANCES))
    return Problem(
        where,
        model,
        f"GPU model {model!r} has no AWS equivalent (known: {known})",
        f"add `equivalence: {{{model}: <instance type>}}` to the config, e.g. an AWS "
        "instance with the same or the closest GPU",
    )


def check_models(models: set[str], overrides: Mapping[str, str], where: str) -> list[Problem]:
    """Problems for accelerator types (GPU models) that cannot be mapped to AWS."""
    return [
        unknown_model_problem(m, where)
        for m in sorted(models)
        if m != CPU_TYPE and m not in overrides and m not in DEFAULT_GPU_INSTANCES
    ]


def unit_rate(
    accelerator_type: str,
    book: PriceBook,
    region: str,
    overrides: Mapping[str, str] | None = None,
    cpu_instance: str = DEFAULT_CPU_INSTANCE,
) -> UnitRate:
    """Price per GPU-hour (GPU types) or vCPU-hour (CPU) from the instance that carries it."""
    itype = instance_for(accelerator_type, overrides or {}, cpu_instance)
    price = book.get(region, itype)

    def refuse(message: str, fix: str) -> EquivalenceError:
        return EquivalenceError([Problem(f"equivalence.{accelerator_type}", itype, message, fix)])

    if price is None or "on-demand" not in price.prices:
        have = ", ".join(book.instance_types(region)) or "(none)"
        raise refuse(
            f"is not priced in the {book.source} prices for {region} ({book.label()})",
            f"run with pricing=live, or map {accelerator_type} to one of: {have}",
        )
    notes: list[str] = []
    if accelerator_type == CPU_TYPE:
        units, unit = price.vcpus, "vCPU"
        if not units:
            raise refuse("has no vCPU count in the prices", "pull live prices")
    else:
        if price.gpu is None:
            example = DEFAULT_GPU_INSTANCES.get(accelerator_type, "p5.48xlarge")
            raise refuse(
                "carries no GPU according to the prices",
                f"map {accelerator_type} to a GPU instance, e.g. {example}",
            )
        units, unit = price.gpu.count, "GPU"
        if price.gpu.name != _AWS_GPU_NAME.get(accelerator_type, accelerator_type):
            notes.append(
                f"{itype} carries {price.gpu.name}, not {accelerator_type}: the comparison "
                "is with a different GPU"
            )
    per = 1.0 / units
    return UnitRate(
        accelerator_type=accelerator_type,
        instance_type=itype,
        unit=unit,
        units_per_instance=units,
        prices={
            option: p.model_copy(
                update={"hourly_usd": p.hourly_usd * per, "upfront_usd": p.upfront_usd * per}
            )
            for option, p in price.prices.items()
        },
        notes=tuple(notes),
    )
