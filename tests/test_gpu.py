"""The GPU path (skipped without CUDA): the fine-tune job with bf16 + NCCL on one GPU, and the
inference engine on CUDA. ``benchmarks/gpu_check.sh`` runs the fuller check on a GPU machine."""

import json

import pytest

from tests.conftest import submit_finetune

pytestmark = [pytest.mark.gpu, pytest.mark.integration]


@pytest.mark.parametrize("stage", [2, 3])
def test_finetune_on_cuda_with_bf16_and_nccl(ray_cluster, tiny_model_dir, stage):
    name = f"gpu-zero{stage}"
    job = submit_finetune(
        ray_cluster,
        "jobs/configs/finetune/tiny_test.yaml",
        f"model={tiny_model_dir}",
        f"run_name={name}",
        "scaling.use_gpu=true",
        "scaling.num_workers=1",
        f"deepspeed.zero_stage={stage}",
        timeout_s=900,
    )
    assert job.ok, job.output[-3000:]
    result = json.loads((ray_cluster.root / "runs" / name / "result.json").read_text())
    assert result["device"] == "cuda" and result["dtype"] == "bf16"
    assert result["train_loss_last"] < result["train_loss_first"]


def test_engine_on_cuda_matches_greedy(tiny_model_dir):
    from cluster.inference.engine import Engine, Request, SamplingParams
    from cluster.inference.loading import load_for_inference

    lm = load_for_inference(str(tiny_model_dir), device="cuda")
    eng = Engine(lm.model, lm.tokenizer, eos_ids=[], context_len=lm.context_len, device=lm.device)
    reqs = eng.generate([Request([5, 6, 7], SamplingParams(max_tokens=8)) for _ in range(4)])
    assert all(len(r.out_ids) == 8 for r in reqs)
    assert len({tuple(r.out_ids) for r in reqs}) == 1
