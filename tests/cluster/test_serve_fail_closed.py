"""A real Serve deploy fails closed: the app builder runs in Serve's build task and reads the
proxies' host from the Serve controller there; on 0.0.0.0 without an API key it refuses to
build (no vLLM starts). Here, not in tests/serve/: the deploy replaces every app on the
session's cluster and shuts Serve down after, which the Serve tests' shared app must not see.
The loopback case (no key on 127.0.0.1 is allowed) is what every other Serve test deploys."""

import pytest

from serve.deploy import deploy, undeploy, wait_running
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.integration
ENV = "ONPREM_TEST_GUARD_KEY"


def test_a_real_serve_deploy_without_a_key_off_loopback_is_refused(ray_cluster):
    llm = {"model_loading_config": {"model_id": "m", "model_source": "no-such-model"}}
    config = {
        "http_options": {"host": "0.0.0.0", "port": free_port()},
        "applications": [
            {
                "name": "guard",
                "route_prefix": "/guard",
                "import_path": "serve.app:build_app",
                "args": {"llm_configs": [llm], "api_key_env": ENV},
                "runtime_env": {"env_vars": {"PYTHONPATH": str(REPO)}},  # this checkout
            }
        ],
    }
    deploy(ray_cluster, config)
    try:
        with pytest.raises(RuntimeError, match="failed to deploy") as info:
            wait_running(ray_cluster, "guard", timeout_s=180)
    finally:
        undeploy(ray_cluster)
    message = str(info.value)
    assert "http_options.host is '0.0.0.0'" in message and ENV in message, message
    assert "neither in the model store" not in message  # refused before the model is looked up
