"""``merged/`` is the base model plus the LoRA update: the merged model's logits equal the
base model's with the adapter applied (a small random model; the story serves the real one)."""

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from jobs.train.run import merge_adapter


def test_the_merged_model_computes_what_base_plus_adapter_computes(
    tiny_model_dir, tiny_adapter_dir, tmp_path
):
    merge_adapter(tiny_model_dir, tiny_adapter_dir, tmp_path / "merged")
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        plain = base(ids).logits
        with_adapter = PeftModel.from_pretrained(base, tiny_adapter_dir)(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(ids).logits
    assert not torch.allclose(plain, with_adapter, atol=1e-3)  # the adapter changes the answer
    torch.testing.assert_close(merged, with_adapter, rtol=1e-4, atol=1e-5)
    assert not any(
        "lora" in k for k in AutoModelForCausalLM.from_pretrained(tmp_path / "merged").state_dict()
    )
