"""GGUF → Hugging Face safetensors, so every engine (PyTorch, DeepSpeed, PEFT, Serve) reads one
format.

transformers dequantizes a GGUF file into a normal PyTorch model but refuses to save it ("quantized
with gguf and is not serializable"), so we rebuild the model from its config without the
quantization marker and copy the dequantized weights over (every key must match).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def gguf_metadata(path: Path) -> dict[str, Any]:
    """A few facts from the GGUF header: architecture, name and quantization type."""
    from gguf import GGUFReader
    from gguf.constants import LlamaFileType

    reader = GGUFReader(str(path))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.parts[f.data[0]]
        if f.types and f.types[0].name == "STRING":
            return bytes(value).decode("utf-8", "replace")
        return value.tolist()[0] if hasattr(value, "tolist") else value

    file_type = field("general.file_type")
    try:
        quant = (
            LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
        )
    except ValueError:
        quant = str(file_type)
    return {
        "architecture": field("general.architecture"),
        "name": field("general.name"),
        "quantization": quant,
        "tensors": len(reader.tensors),
    }


def convert_gguf(gguf_path: Path, dest: Path) -> dict[str, Any]:
    """Write ``dest`` as an HF model folder (fp32 safetensors, tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    log.info("loading %s (dequantizing; ~25 s for a 135M model on 2 cores)", name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=True)
    if missing or unexpected:  # strict=True raises first; kept for clarity of intent
        raise RuntimeError(f"GGUF weights do not match the model: {missing} {unexpected}")
    if quantized.generation_config is not None:
        plain.generation_config = quantized.generation_config
    dest.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    if not tokenizer.chat_template:
        log.warning("%s carries no chat template; chat endpoints will need one", name)
    meta = gguf_metadata(gguf_path)
    del quantized, plain
    return meta
