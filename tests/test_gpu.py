"""The GPU path (skipped without CUDA): the fine-tune job with bf16 + NCCL on one GPU, the Serve
config as the fleet and KubeRay run it (vLLM on CUDA), and the evaluation's batch processor on
CUDA. Needs the CUDA build of the engine (`make install ENGINE=cuda`)."""

import json

import openai
import pytest

from serve.deploy import deploy, load_config, undeploy, wait_running, with_overrides
from tests.conftest import REPO, free_port, submit_finetune

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


def test_the_fleet_serve_config_serves_on_cuda(ray_cluster, serving_model_dir, serving_adapter_dir):
    from cluster.serve_configs import serve_config

    port = free_port()

    cfg = serve_config(load_config(), "k8s")  # GPU bundles, CUDA graphs: as on the fleet
    cfg = with_overrides(
        cfg,
        port=port,
        models={"tiny": str(serving_model_dir)},
        adapters={"support": str(serving_adapter_dir)},
        llm={"engine_kwargs": {"dtype": "bfloat16", "max_model_len": 512}},
        args={"api_key_env": "ONPREM_NO_KEY_IN_THIS_TEST"},
    )
    cfg["http_options"]["host"] = "127.0.0.1"
    deploy(ray_cluster, cfg)
    try:
        wait_running(ray_cluster, "llm", timeout_s=900)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-")
        for model in ("tiny", "tiny:support"):
            out = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
            assert out.usage.completion_tokens > 0
    finally:
        undeploy(ray_cluster)


def test_the_evaluation_batch_processor_runs_on_cuda(ray_cluster, serving_model_dir):
    from cluster.submit import submit

    job = submit(
        ray_cluster,
        [
            "python",
            "-m",
            "jobs.evaluate",
            "--config",
            "jobs/configs/evaluate/smollm2_support.yaml",
            "name=gpu-eval",
            f"candidates=[{{name: base, model: {serving_model_dir}}}]",
            "retention_set=null",
            "generation.max_tokens=8",
            "engine.gpus=1",
            "engine.engine_kwargs={dtype: bfloat16, max_model_len: 512}",
        ],
        kind="evaluate",
        working_dir=REPO,
        timeout_s=900,
    )
    assert job.ok, job.output[-3000:]
    result = json.loads((ray_cluster.root / "reports/eval/gpu-eval/eval.json").read_text())
    assert result["sets"]["eval"]["base"]["ref_loss"]["n"] == 60
