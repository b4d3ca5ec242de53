"""Which AWS instance carries a replica: the cheapest one that holds it, as SkyPilot's optimizer
picks (the cheapest instance type offering the requested accelerators)::

    shape = Shape("L40S", gpus=1, memory_gb=48)
    pick = cheapest_instance(shape, book, "us-east-1")   # g6e.xlarge, 1 replica per instance

A replica is ``gpus`` GPUs of one model with at least ``memory_gb`` each. An instance holds it
when it carries that GPU (AWS's name for it) with at least that memory (5% slack: AWS states
MiB, vendors GB), at least ``gpus`` of them (tensor parallelism does not span instances), and,
above 4 GPUs per replica, NVSwitch: tensor-parallel all-reduce over 8 PCIe GPUs crosses CPU
sockets. Among those, the lowest on-demand price per replica wins (``instance price / replicas
per instance``). ``equivalence`` pins a GPU model to an instance type instead.

CPU-only nodes (a head node, the laptop) are priced per vCPU of a general-purpose instance:
``m7i.xlarge`` (4 vCPU, 16 GiB, ~4 GB per core like an on-prem x86 server).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cluster.config import Problem
from cluster.inventory import CPU_TYPE
from jobs.cost.prices import InstancePrice, PriceBook

DEFAULT_CPU_INSTANCE = "m7i.xlarge"
# on-prem GPU model -> AWS's GPU name (describe_instance_types); the rest are spelled alike
AWS_GPU_NAME = {"A100-80GB": "A100", "A100-40GB": "A100"}
KNOWN_GPUS = ("A100-40GB", "A100-80GB", "A10G", "H100", "H200", "L4", "L40S", "T4", "V100")
NVSWITCH_ABOVE = 4  # GPUs per replica beyond which tensor parallelism needs NVSwitch


class EquivalenceError(ValueError):
    """A replica or a unit that cannot be priced in the cloud; carries the problems."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.render() for p in problems))


@dataclass(frozen=True)
class Shape:
    """One replica: ``gpus`` GPUs of ``gpu`` with at least ``memory_gb`` each."""

    gpu: str
    gpus: int
    memory_gb: float


@dataclass(frozen=True)
class Pick:
    """The instance that carries a shape, and why it was chosen."""

    shape: Shape
    instance_type: str
    replicas_per_instance: int
    price: InstancePrice
    why: str

    @property
    def on_demand(self) -> float:
        return self.price.prices["on-demand"].hourly_usd


def unknown_model_problem(model: str, where: str = "equivalence") -> Problem:
    return Problem(
        where,
        model,
        f"GPU model {model!r} has no AWS equivalent (known: {', '.join(KNOWN_GPUS)})",
        f"add `equivalence: {{{model}: <instance type>}}` to the config, e.g. an AWS "
        "instance with the same or the closest GPU",
    )


def check_models(models: set[str], pins: Mapping[str, str], where: str) -> list[Problem]:
    """Problems for GPU models that AWS does not sell and that no pin maps."""
    return [
        unknown_model_problem(m, where)
        for m in sorted(models)
        if m != CPU_TYPE and m not in pins and m not in KNOWN_GPUS
    ]


def holds(inst: InstancePrice, shape: Shape) -> bool:
    gpu = inst.gpu
    return (
        gpu is not None
        and gpu.name == AWS_GPU_NAME.get(shape.gpu, shape.gpu)
        and gpu.memory_mib * 2**20 >= 0.95 * shape.memory_gb * 1e9
        and gpu.count >= shape.gpus
        and (shape.gpus <= NVSWITCH_ABOVE or gpu.interconnect == "nvswitch")
        and "on-demand" in inst.prices
    )


def cheapest_instance(
    shape: Shape, book: PriceBook, region: str, pins: Mapping[str, str] | None = None
) -> Pick:
    """The cheapest instance per replica that holds ``shape`` (or the pinned one)."""
    where = f"replica of {shape.gpus} x {shape.gpu}"
    types = book.regions.get(region, {})
    pin = (pins or {}).get(shape.gpu)
    if pin is not None:
        if pin not in types:
            selling = sorted(t for t, i in types.items() if i.gpu and i.gpu.name == shape.gpu)
            raise EquivalenceError([Problem(
                f"equivalence.{shape.gpu}", pin,
                f"is not an instance AWS sells in {region} according to {book.label()}",
                f"use one of: {', '.join(selling) or '(none carries it)'}, or pricing=live",
            )])  # fmt: skip
        candidates = {pin: types[pin]}
    else:
        candidates = types
    fits = {t: i for t, i in candidates.items() if holds(i, shape)}
    if not fits:
        carrying = sorted(
            f"{t} ({i.gpu.count} x {i.gpu.name} {i.gpu.memory_mib / 1024:.0f} GiB, "
            f"{i.gpu.interconnect})"
            for t, i in types.items()
            if i.gpu
        )
        raise EquivalenceError([Problem(
            f"equivalence.{shape.gpu}" if pin else f"scenarios: {where}",
            pin or f"{shape.gpus} x {shape.gpu} {shape.memory_gb:g} GB",
            "no instance in the prices can hold this replica (same GPU, enough memory, "
            f"one instance, NVSwitch above {NVSWITCH_ABOVE} GPUs)",
            f"use fewer GPUs per replica, pin one with `equivalence`, or pricing=live; "
            f"GPU instances priced: {'; '.join(carrying) or 'none'}",
        )])  # fmt: skip
    per_replica = {t: i.prices["on-demand"].hourly_usd / (i.gpu.count // shape.gpus)
                   for t, i in fits.items()}  # fmt: skip
    best = min(per_replica, key=lambda t: (per_replica[t], fits[t].gpu.count))
    inst = fits[best]
    rpi = inst.gpu.count // shape.gpus
    others = ", ".join(f"{t} ${v:,.2f}" for t, v in sorted(per_replica.items(), key=lambda x: x[1]))
    why = (
        f"pinned by equivalence; ${per_replica[best]:,.2f} per replica-hour"
        if pin
        else f"cheapest on-demand per replica of {len(fits)} that hold {shape.gpus} x "
        f"{shape.gpu} ({others} per replica-hour)"
    )
    if shape.gpus > NVSWITCH_ABOVE:
        why += f"; tensor parallel {shape.gpus} needs NVSwitch"
    return Pick(shape, best, rpi, inst, why)


def unit_on_demand(
    accelerator: str,
    book: PriceBook,
    region: str,
    pins: Mapping[str, str],
    cpu_instance: str = DEFAULT_CPU_INSTANCE,
    memory_gb: float = 0.0,
) -> tuple[str, float]:
    """(instance type, on-demand USD per GPU- or vCPU-hour) for the measured view."""
    if accelerator == CPU_TYPE:
        itype = pins.get(CPU_TYPE, cpu_instance)
        inst = book.get(region, itype)
        if inst is None or not inst.vcpus or "on-demand" not in inst.prices:
            raise EquivalenceError([Problem(
                "cpu_instance", itype, f"has no vCPU count or on-demand price in {book.label()}",
                f"use one of: {', '.join(book.instance_types(region))}, or pricing=live",
            )])  # fmt: skip
        return itype, inst.prices["on-demand"].hourly_usd / inst.vcpus
    pick = cheapest_instance(Shape(accelerator, 1, memory_gb), book, region, pins)
    return pick.instance_type, pick.on_demand / pick.price.gpu.count
