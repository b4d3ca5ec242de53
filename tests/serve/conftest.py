"""One deployment of ``serve/config.yaml`` (a tiny model vLLM can serve, with a LoRA adapter, on
the test port, with an API key) on the session's test cluster, shared by the serve tests."""

import copy
import time

import httpx
import pytest

from serve.deploy import deploy, load_config, undeploy, wait_running, with_overrides
from tests.conftest import port

PORT = port(8011)
KEY = "test-key-123"
BASE = f"http://127.0.0.1:{PORT}"
MODEL = "tiny"
ADAPTER = "tiny:support"
ENGINE = {"dtype": "float32", "max_model_len": 512, "max_num_seqs": 8, "enforce_eager": True}


def test_config(model_dir, adapter_dir) -> dict:
    cfg = with_overrides(
        load_config(),
        port=PORT,
        models={MODEL: str(model_dir)},
        adapters={"support": str(adapter_dir)},
        llm={
            "engine_kwargs": ENGINE,
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
        runtime_env={"env_vars": {"ONPREM_TEST_KEY": KEY}},
    )
    # A second app with a one-slot queue, to see 503 + Retry-After when it overflows.
    tight = copy.deepcopy(cfg["applications"][0])
    tight.update(name="tight", route_prefix="/tight")
    llm = tight["args"]["llm_configs"][0]
    llm.pop("adapters", None)
    llm["deployment_config"] = {
        "num_replicas": 1,
        "max_ongoing_requests": 1,
        "max_queued_requests": 1,
        "ray_actor_options": {"num_cpus": 0},
    }
    cfg["applications"].append(tight)
    return cfg


@pytest.fixture(scope="package")  # undeployed after tests/serve: replicas hold CPUs
def served(ray_cluster, serving_model_dir, serving_adapter_dir):
    cfg = test_config(serving_model_dir, serving_adapter_dir)
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
