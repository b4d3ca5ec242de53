"""Load a base model with zero or more LoRA adapters for inference.

    lm = load_for_inference("smollm2-135m-instruct", adapters={"support": "runs/x/adapter"})
    lm.model, lm.tokenizer, lm.adapters   # a PeftModel when adapters are given

References are resolved through the model store (names) or taken as folders; an adapter may
also be a store entry registered from a run (format peft-lora).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.store import ModelStore, StoreError

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    base_name: str
    base_dir: Path
    adapters: dict[str, Path] = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def context_len(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def eos_ids(self) -> list[int]:
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        if isinstance(eos, int):
            ids.add(eos)
        elif eos:
            ids.update(eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(ids)


def resolve_adapter(ref: str, store: ModelStore) -> Path:
    """An adapter folder: a store entry, a run folder (``runs/<name>`` → its adapter/), or a
    folder with adapter_config.json."""
    from cluster import paths

    candidates = []
    if store.has(ref):
        candidates.append(store.path(ref))
    # Relative paths mean the platform root (a Serve replica's cwd is not the project).
    for p in (Path(ref).expanduser(), paths.resolve(ref)):
        candidates += [p, p / "adapter"]
    for c in candidates:
        if (c / "adapter_config.json").is_file():
            return c.resolve()
    raise StoreError(
        f"adapter {ref!r} not found: it is neither a store entry nor a folder holding "
        "adapter_config.json. Fix: give runs/<run_name>/adapter from a fine-tune, or register "
        "the run with register=true"
    )


def pick_device(device: str = "auto") -> tuple[str, Any]:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return device, dtype


def load_for_inference(
    base: str,
    adapters: dict[str, str] | None = None,
    *,
    store: ModelStore | None = None,
    device: str = "auto",
) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store = store or ModelStore()
    base_dir = store.resolve(base)
    manifest = base_dir / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("format") == "peft-lora":
        raise StoreError(
            f"{base!r} is a LoRA adapter, not a base model. Fix: serve its base "
            "model and pass this one as an adapter"
        )
    device, dtype = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype).to(device)
    resolved: dict[str, Path] = {}
    if adapters:
        from peft import PeftModel

        items = list(adapters.items())
        first_name, first_ref = items[0]
        resolved[first_name] = resolve_adapter(first_ref, store)
        model = PeftModel.from_pretrained(model, resolved[first_name], adapter_name=first_name)
        for name, ref in items[1:]:
            resolved[name] = resolve_adapter(ref, store)
            model.load_adapter(resolved[name], adapter_name=name)
    model.eval()
    torch.set_grad_enabled(False)
    return LoadedModel(
        model,
        tokenizer,
        base,
        base_dir,
        resolved,
        device,
        "bfloat16" if dtype == torch.bfloat16 else "float32",
    )
