"""How many GPUs one vLLM engine of a model needs on a given GPU: the tensor-parallel size,
from the model's shape and the GPU's memory (pure arithmetic, no GPU needed). The 8B serve
configs (``python -m cluster.onprem serve-8b``) and the 8B evaluation config are sized with it.

Per GPU, an engine holds its share of the weights and of the KV cache, within vLLM's
``gpu_memory_utilization`` of the card, less what CUDA graphs and activations take:

    params x bytes / tp  +  kv_tokens x kv_bytes_per_token / tp  <=  memory x utilization - overhead

The smallest tensor-parallel size that fits wins (fewer GPUs per replica, more replicas), among
the sizes that divide the model's KV heads and fit in one server (ranks talk over NVLink/PCIe,
not the network).
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9


@dataclass(frozen=True)
class ModelShape:
    """What the memory arithmetic needs of a decoder-only transformer (its config.json)."""

    name: str
    params: float  # parameters
    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_param: int = 2  # bf16

    @property
    def weights_gb(self) -> float:
        return self.params * self.bytes_per_param / GB

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V, every layer, every KV head: 2 x layers x kv_heads x head_dim x bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_param


# meta-llama/Llama-3.1-8B-Instruct's config.json: 32 layers, 8 KV heads of 128; 8.03B parameters.
LLAMA_3_1_8B = ModelShape("llama-3.1-8b-instruct", 8.03e9, 32, 8, 128)

# The KV cache each replica should hold: 32 sequences of 8k tokens (max_num_seqs 64 at 8k, half
# full on average): 262,144 tokens, 32 GiB for the 8B model.
KV_TOKENS = 32 * 8192
UTILIZATION = 0.90  # vLLM's gpu_memory_utilization
OVERHEAD_GB = 3.0  # CUDA graphs, activations, the NCCL and CUDA contexts (per GPU)


class DoesNotFit(ValueError):
    """No tensor-parallel size within one server holds the model and its KV cache."""


def per_gpu_gb(model: ModelShape, tp: int, kv_tokens: int = KV_TOKENS) -> float:
    """GB one GPU needs at tensor-parallel size ``tp``: weights and KV cache shares."""
    return (model.weights_gb + kv_tokens * model.kv_bytes_per_token / GB) / tp


def tensor_parallel(
    model: ModelShape,
    gpu_memory_gb: float,
    gpus_per_node: int,
    kv_tokens: int = KV_TOKENS,
    utilization: float = UTILIZATION,
) -> int:
    """The smallest tensor-parallel size whose per-GPU share fits (module docstring)."""
    usable = gpu_memory_gb * utilization - OVERHEAD_GB
    sizes = [tp for tp in (1, 2, 4, 8) if tp <= gpus_per_node and model.kv_heads % tp == 0]
    for tp in sizes:
        if per_gpu_gb(model, tp, kv_tokens) <= usable:
            return tp
    need = per_gpu_gb(model, sizes[-1], kv_tokens) if sizes else float("inf")
    raise DoesNotFit(
        f"{model.name} with {kv_tokens:,} cached tokens needs {need:.1f} GB per GPU even at "
        f"tensor parallel {sizes[-1] if sizes else '-'} on {gpus_per_node} x {gpu_memory_gb:g} GB "
        f"GPUs ({usable:.1f} GB usable each). Fix: GPUs with more memory, or fewer cached tokens"
    )
