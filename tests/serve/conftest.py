"""One Serve deployment of ``serve/config.yaml`` (tiny model and adapter, test port, an API
key) on the session's test cluster, shared by the serve tests."""

import copy
import time

import httpx
import pytest

from serve.deploy import deploy, load_config, undeploy, wait_running, with_overrides
from tests.conftest import port

PORT = port(8011)
KEY = "test-key-123"
BASE = f"http://127.0.0.1:{PORT}"


def test_config(tiny_model_dir, tiny_adapter_dir) -> dict:
    cfg = with_overrides(
        load_config(),
        port=PORT,
        args={
            "model": str(tiny_model_dir),
            "served_model_name": "tiny",
            "adapters": {"tiny-support": str(tiny_adapter_dir)},
            "max_tokens_limit": 32,
            "default_max_tokens": 16,
            "api_key_env": "ONPREM_TEST_KEY",
            "usage_interval_s": 2,
            # Coalesced stream messages here; the slow tier streams every token (the default).
            "stream_interval_ms": 20,
        },
        runtime_env={"env_vars": {"ONPREM_TEST_KEY": KEY}},
        deployments={
            "LLMServer": {
                "ray_actor_options": {"num_cpus": 0.5},
                "autoscaling_config": {
                    "upscale_delay_s": 2,
                    "downscale_delay_s": 6,
                    "target_ongoing_requests": 2,
                },
            }
        },
    )
    # A second app with a one-slot queue, to see 503 + Retry-After when it overflows.
    tight = copy.deepcopy(cfg["applications"][0])
    tight.update(name="tight", route_prefix="/tight")
    for dep in tight["deployments"]:
        if dep["name"] == "LLMServer":
            dep.pop("autoscaling_config", None)
            dep.update(num_replicas=1, max_ongoing_requests=1, max_queued_requests=1)
    cfg["applications"].append(tight)
    return cfg


@pytest.fixture(scope="package")  # undeployed after tests/serve: replicas hold CPUs
def served(ray_cluster, tiny_model_dir, tiny_adapter_dir):
    cfg = test_config(tiny_model_dir, tiny_adapter_dir)
    deploy(ray_cluster, cfg)
    time.sleep(2)
    wait_running(ray_cluster, "llm", timeout_s=300)
    wait_running(ray_cluster, "tight", timeout_s=300)
    yield {"cluster": ray_cluster, "config": cfg, "base": BASE, "key": KEY}
    undeploy(ray_cluster)


@pytest.fixture
def http(served):
    with httpx.Client(
        base_url=served["base"], timeout=60, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client
