import pytest

from jobs.train.flops import flops_per_token, mfu


def test_mfu_by_hand():
    # 135M-parameter LoRA run at 50,000 tokens/s on one H100:
    # 4 * 134.5e6 * 5e4 = 2.69e13 FLOP/s; / 989e12 = 0.0272
    assert mfu(134_500_000, True, 50_000, "H100", 1) == pytest.approx(0.0272, abs=1e-4)
    assert flops_per_token(10, lora=False) == 60
    assert mfu(1, True, 1, "CPU", 0) is None and mfu(1, True, 1, "Mystery", 1) is None
