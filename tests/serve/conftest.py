"""One deployment of ``serve/config.yaml`` (a tiny model vLLM can serve, with a LoRA adapter from a
local folder and the same adapter from an S3 bucket on a MinIO-like server, on the test port,
with an API key) on the session's test cluster, shared by the serve tests."""

import copy
import time

import httpx
import pytest

from serve.deploy import deploy, load_config, undeploy, wait_running, with_overrides
from tests.conftest import free_port, s3_env

PORT = free_port()
KEY = "test-key-0123456789abcdef0123456789abcdef"  # 32+ characters: shorter is refused
BASE = f"http://127.0.0.1:{PORT}"
MODEL = "tiny"
ADAPTER = "tiny:support"
CLOUD_ADAPTER = "tiny:cloud-support"  # the same weights, served from s3://adapters/lora/
ENGINE = {"dtype": "float32", "max_model_len": 512, "max_num_seqs": 8, "enforce_eager": True}


def test_config(model_dir, adapter_dir, s3_endpoint: str) -> dict:
    cfg = with_overrides(
        load_config(),
        port=PORT,
        models={MODEL: str(model_dir)},
        adapters={"support": str(adapter_dir)},
        llm={
            "engine_kwargs": ENGINE,
            # Ray Serve LLM's own S3 LoRA loading (dynamic_lora_loading_path), here against a
            # moto server on loopback the way a MinIO store is reached.
            "lora_config": {
                "dynamic_lora_loading_path": "s3://adapters/lora",
                "max_num_adapters_per_replica": 2,
            },
            "placement_group_config": {"bundles": [{"CPU": 0.5}]},
            "deployment_config": {
                "max_ongoing_requests": 8,
                "num_replicas": None,
                "autoscaling_config": {
                    "min_replicas": 1,
                    "max_replicas": 2,
                    "initial_replicas": 1,
                    "upscale_delay_s": 2,
                    "downscale_delay_s": 6,
                    "target_ongoing_requests": 2,
                },
            },
        },
        args={"api_key_env": "ONPREM_TEST_KEY", "usage_interval_s": 2},
        runtime_env={"env_vars": {"ONPREM_TEST_KEY": KEY, **s3_env(s3_endpoint)}},
    )
    # A second app with a one-slot queue, to see 503 + Retry-After when it overflows.
    tight = copy.deepcopy(cfg["applications"][0])
    tight.update(name="tight", route_prefix="/tight")
    llm = tight["args"]["llm_configs"][0]
    llm.pop("adapters", None)
    llm.pop("lora_config", None)
    llm["deployment_config"] = {
        "num_replicas": 1,
        "max_ongoing_requests": 1,
        "max_queued_requests": 1,
        "ray_actor_options": {"num_cpus": 0},
    }
    cfg["applications"].append(tight)
    return cfg


@pytest.fixture(scope="package")
def s3_adapters(serving_adapter_dir, s3_server):
    """The S3 server (a moto process on loopback, as MinIO is reached) holding the adapter as
    lora/cloud-support/ in the bucket ``adapters``."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, **_keys())
    s3.create_bucket(Bucket="adapters")
    for f in serving_adapter_dir.iterdir():
        s3.upload_file(str(f), "adapters", f"lora/cloud-support/{f.name}")
    return s3_server


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region_name": "us-east-1",
    }


@pytest.fixture(scope="package")  # undeployed after tests/serve: replicas hold CPUs
def served(ray_cluster, serving_model_dir, serving_adapter_dir, s3_adapters):
    cfg = test_config(serving_model_dir, serving_adapter_dir, s3_adapters)
    deploy(ray_cluster, cfg)
    time.sleep(2)
    wait_running(ray_cluster, "llm", timeout_s=600)
    wait_running(ray_cluster, "tight", timeout_s=600)
    yield {"cluster": ray_cluster, "config": cfg, "base": BASE, "key": KEY}
    undeploy(ray_cluster)


@pytest.fixture
def http(served):
    with httpx.Client(
        base_url=served["base"], timeout=60, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client
