"""Model FLOPs utilization (MFU) of a training run: the share of the GPUs' peak bf16 throughput
that the model's own arithmetic used.

    achieved = flops_per_token * tokens_per_s          (summed over every GPU of the run)
    mfu      = achieved / (peak_flops_per_gpu * gpus)

``flops_per_token`` is 6·N for full fine-tuning (forward 2N, backward 4N) and 4·N for LoRA
(the frozen weights need no weight gradients; the adapters' own FLOPs are negligible), with N
the model's parameter count; attention's sequence-length term is left out, as in the PaLM
paper's convention for short sequences.
"""

from __future__ import annotations

# Dense bf16 tensor-core peak per GPU, FLOP/s (vendor datasheets, without sparsity).
PEAK_BF16 = {
    "H100": 989e12,  # H100 SXM5
    "H200": 989e12,
    "A100-80GB": 312e12,
    "A100-40GB": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
}


def flops_per_token(parameters: int, lora: bool) -> float:
    return (4.0 if lora else 6.0) * parameters


def mfu(
    parameters: int, lora: bool, tokens_per_s: float, gpu_model: str, gpus: int
) -> float | None:
    """The run's MFU, or None for a GPU model whose peak is not listed (or CPU)."""
    peak = PEAK_BF16.get(gpu_model)
    if peak is None or gpus <= 0:
        return None
    return flops_per_token(parameters, lora) * tokens_per_s / (peak * gpus)
