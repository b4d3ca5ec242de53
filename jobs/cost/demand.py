"""From demand to replicas: the throughput of one replica (measured or derived) and the replicas
a growing load needs each month, with N+1 redundancy (pure, numpy, vectorised over samples).

Throughput per GPU, in this order of trust:

- **measured**: a benchmark of the planned fleet (``bench=``): the highest concurrency whose p95
  end-to-end latency meets the target, its output tokens/s divided by the GPUs that served it;
- **configured**: the scenario's figure, used when it agrees with the derivation within 10%;
- **derived**: a public measurement (``REFERENCE``: Llama-3.1-8B bf16 on one A100-40GB with
  vLLM, 75 output tok/s at 1 user and 6.6x that, 495, at 8) scaled by memory bandwidth and by the
  weight bytes each GPU reads per token. Decoding is bandwidth-bound: a replica of ``N`` GPUs
  reads ``2P/N`` bytes per GPU per step, so per GPU::

      tokens_per_s = 495 x (bandwidth / 1.56 TB/s) x (8B / P)        whatever N is

  KV-cache reads are left out (short contexts); a configured figure off by more is corrected.

Replicas in month ``m`` (load in output tokens/s, ``mean`` over the day, ``peak`` its busiest
hour)::

    mean(m)   = tokens_per_day / 86400 x (1 + growth)^m
    serving   = ceil(mean x peak_to_mean / (replica_tokens_per_s x headroom))
    replicas  = serving + spares                                 (N+1: spares = 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.cost.bench import Bench, operating_point

REFERENCE = {"params_b": 8.0, "tokens_per_s": 75.0 * 6.6, "bandwidth_tbps": 1.56}
# memory bandwidth per GPU, TB/s (NVIDIA datasheets; SXM parts where there are two)
BANDWIDTH_TBPS = {
    "H100": 3.35, "H200": 4.8, "A100-80GB": 2.04, "A100-40GB": 1.56, "L40S": 0.86,
    "L4": 0.3, "A10G": 0.6, "T4": 0.32, "V100": 0.9,
}  # fmt: skip
AGREES = 0.10  # a configured rate within 10% of the derivation is kept
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Rate:
    """Output tokens/s per GPU of one replica shape, and where the figure comes from."""

    gpu: str
    gpus_per_replica: int
    tokens_per_s: float  # per GPU
    label: str  # measured | configured | derived | corrected
    how: str

    @property
    def replica_tokens_per_s(self) -> float:
        return self.tokens_per_s * self.gpus_per_replica


def derived_tokens_per_s(gpu: str, params_b: float) -> float | None:
    """Per-GPU output tokens/s by the bandwidth derivation; None without a bandwidth figure."""
    bw = BANDWIDTH_TBPS.get(gpu)
    if bw is None:
        return None
    ref = REFERENCE
    return ref["tokens_per_s"] * bw / ref["bandwidth_tbps"] * ref["params_b"] / params_b


def rate(
    gpu: str,
    gpus: int,
    params_b: float,
    configured: float | None,
    bench: Bench | None = None,
    latency_s: float | None = None,
    bench_gpus: int | None = None,
) -> Rate:
    """The per-GPU rate of a replica shape: measured, configured (if the derivation agrees),
    or derived; the ``how`` says which and why."""
    if bench is not None:
        level = operating_point(bench.levels, latency_s)
        if level is not None:
            per_gpu = level.output_tokens_per_s / (bench_gpus or gpus)
            how = (f"measured: {level.output_tokens_per_s:,.0f} output tok/s at concurrency "
                   f"{level.concurrency} (p95 {level.e2e_p95_s:.2f} s), {bench.path}")  # fmt: skip
            return Rate(gpu, gpus, per_gpu, "measured", how)
    derived = derived_tokens_per_s(gpu, params_b)
    basis = (
        f"495 tok/s (8B, A100-40GB, 8 users) x {BANDWIDTH_TBPS.get(gpu)} / 1.56 TB/s x "
        f"8 / {params_b:g}B"
    )
    if derived is None:
        if configured is None:
            raise ValueError(f"no bandwidth figure for {gpu}: give its tokens_per_s")
        return Rate(gpu, gpus, configured, "configured", "configured; no derivation for this GPU")
    if configured is None:
        return Rate(gpu, gpus, derived, "derived", f"derived: {basis} = {derived:.1f}")
    off = configured / derived - 1
    if abs(off) <= AGREES:
        how = f"configured {configured:g}; the derivation gives {derived:.1f} ({off:+.0%})"
        return Rate(gpu, gpus, configured, "configured", how)
    how = (f"corrected: configured {configured:g} is {off:+.0%} off the derivation "
           f"({basis} = {derived:.1f}); {derived:.1f} used")  # fmt: skip
    return Rate(gpu, gpus, derived, "corrected", how)


def load(tokens_per_day: np.ndarray, growth_pct: np.ndarray, months: int) -> np.ndarray:
    """Mean output tokens/s in each month, shape (samples, months)."""
    m = np.arange(months)
    growth = (1 + np.asarray(growth_pct, float)[:, None] / 100.0) ** m
    return np.asarray(tokens_per_day, float)[:, None] / SECONDS_PER_DAY * growth


def replicas(
    mean: np.ndarray,
    peak_to_mean: np.ndarray,
    replica_tokens_per_s: np.ndarray,
    headroom: float,
    spares: int,
) -> np.ndarray:
    """Replicas each month for the busiest hour, each loaded to ``headroom``, plus spares."""
    per = np.asarray(replica_tokens_per_s, float)[:, None] * headroom
    peak = mean * np.asarray(peak_to_mean, float)[:, None]
    return np.ceil(peak / per - 1e-9) + spares
