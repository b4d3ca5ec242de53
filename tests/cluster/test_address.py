"""Operators reach a remote cluster: which address and token a command uses (flag, environment,
local cluster), and `cluster status`, `cluster submit`, `serve.status`, `serve.scale` and
`serve deploy` sending their requests, with the token, to the address they were given (a fake
head's dashboard on loopback; the local test cluster is never contacted).

    pytest tests/cluster/test_address.py
"""

import json
from pathlib import Path

import pytest
import yaml

import cluster.__main__ as cluster_cli
from cluster import address, submit
from cluster.address import AddressError, ClusterAddress, resolve
from cluster.local import LocalCluster
from serve import scale, status
from serve.__main__ import main as serve_cli
from tests.cluster.fake_dashboard import FakeDashboard

REPO = Path(__file__).resolve().parents[2]
TOKEN = "a" * 64
APP = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())["applications"][0]
ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@pytest.fixture
def local(tmp_path) -> LocalCluster:
    """A local cluster that is not running (a port nothing listens on)."""
    return LocalCluster(dashboard_port=1, root=tmp_path, num_cpus=1, num_gpus=0)


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "fleet_token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def remote_env(monkeypatch, token_file, tmp_path):
    """No address in the environment, the fleet's token file, and a local cluster that is down
    (so a command that ignored --address would fail, not silently reach the test cluster)."""
    for var in ADDRESS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    monkeypatch.setenv("ONPREM_DASHBOARD_PORT", "1")
    monkeypatch.setenv("ONPREM_ROOT", str(tmp_path))


@pytest.fixture
def dash(remote_env):
    with FakeDashboard(TOKEN, APP) as fake:
        yield fake


# -- which address, which token ------------------------------------------------------------


def test_the_flag_wins_then_the_api_server_variable_then_an_http_ray_address(local, token_file):
    env = {
        "RAY_API_SERVER_ADDRESS": "http://10.10.0.10:8265/",
        "RAY_ADDRESS": "http://10.10.0.99:8265",
        "RAY_AUTH_TOKEN_PATH": str(token_file),
    }
    flagged = resolve("http://10.10.0.20:8265", env, local)
    assert (flagged.dashboard_url, flagged.source) == ("http://10.10.0.20:8265", "--address")
    assert flagged.token() == TOKEN and flagged.gcs_port is None
    from_env = resolve(None, env, local)
    assert from_env.dashboard_url == "http://10.10.0.10:8265"  # trailing slash dropped
    assert from_env.source == "$RAY_API_SERVER_ADDRESS"
    del env["RAY_API_SERVER_ADDRESS"]
    assert resolve(None, env, local).dashboard_url == "http://10.10.0.99:8265"


def test_without_an_address_it_is_the_local_cluster_with_its_own_token(local, token_file):
    local.ensure_token()
    # A GCS address in RAY_ADDRESS (what Ray gives job drivers) is not a dashboard: ignored.
    env = {"RAY_ADDRESS": "10.10.0.10:6379", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    found = resolve(None, env, local)
    assert found == local.address()
    assert found.dashboard_url == "http://127.0.0.1:1" and found.gcs_port == local.gcs_port
    # The fleet's token in the environment is not sent to the local cluster, and back.
    assert found.token() == local.token_path.read_text().strip() != TOKEN


def test_a_token_value_in_the_environment_is_used_and_passed_on():
    env = {"RAY_API_SERVER_ADDRESS": "https://head.example:8265", "RAY_AUTH_TOKEN": "t0k"}
    found = resolve(None, env)
    assert found.auth_headers() == {"Authorization": "Bearer t0k"}
    assert found.client_env() == {
        "RAY_AUTH_MODE": "token",
        "RAY_API_SERVER_ADDRESS": "https://head.example:8265",
        "RAY_AUTH_TOKEN": "t0k",
    }


@pytest.mark.parametrize(
    ("flag", "env", "named"),
    [
        ("10.10.0.10:6379", {}, "--address"),
        ("ray://10.10.0.10:10001", {}, "--address"),
        (None, {"RAY_API_SERVER_ADDRESS": "10.10.0.10:8265"}, "RAY_API_SERVER_ADDRESS"),
    ],
)
def test_an_address_that_is_not_a_dashboard_url_is_refused_with_the_fix(flag, env, named):
    with pytest.raises(AddressError) as info:
        resolve(flag, env)
    message = str(info.value)
    assert message.startswith(f"{named}=") and "http://10.10.0.10:8265" in message


def test_the_job_client_goes_where_it_was_told_whatever_the_environment(monkeypatch):
    """Ray's JobSubmissionClient takes RAY_API_SERVER_ADDRESS over its argument."""
    import ray.job_submission

    seen = []

    def client(addr, headers=None):
        seen.append((addr, headers, address.os.environ.get("RAY_API_SERVER_ADDRESS")))

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", client)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8265")
    ClusterAddress("http://10.10.0.10:8265", token_value="t").job_client()
    url = "http://10.10.0.10:8265"
    assert seen == [(url, {"Authorization": "Bearer t"}, url)]
    assert address.os.environ["RAY_API_SERVER_ADDRESS"] == "http://127.0.0.1:8265"  # restored


# -- the commands, against a fake remote head ----------------------------------------------


def test_problem_names_the_address_and_the_fix(dash, tmp_path):
    assert ClusterAddress(dash.url, token_value=TOKEN, source="--address").problem() is None
    wrong = ClusterAddress(dash.url, token_value="nope", source="--address").problem()
    assert "refused the token (HTTP 403" in wrong and "RAY_AUTH_TOKEN_PATH" in wrong
    missing = ClusterAddress(dash.url, tmp_path / "absent", source="--address").problem()
    assert "HTTP 401" in missing and "none was found" in missing
    down = ClusterAddress("http://127.0.0.1:1", source="--address").problem()
    assert "no Ray dashboard answers at http://127.0.0.1:1 (--address)" in down


def test_serve_status_reads_the_remote_head(dash, capsys):
    assert status.main(["--address", dash.url, "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    model = APP["args"]["llm_configs"][0]["model_loading_config"]["model_id"]
    replicas = state["apps"]["llm"]["deployments"][f"LLMServer:{model}"]["replicas"]
    assert [r["node_ip"] for r in replicas] == ["10.10.0.11"]
    assert dash.requests and all(auth == f"Bearer {TOKEN}" for _, _, auth in dash.requests)


def test_serve_status_without_the_flag_uses_the_environment(dash, monkeypatch, capsys):
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", dash.url)
    assert status.main([]) == 0
    assert "app llm: RUNNING" in capsys.readouterr().out


def test_serve_status_with_a_wrong_token_fails_clearly(dash, token_file, capsys):
    token_file.write_text("wrong")
    assert status.main(["--address", dash.url]) == 2
    assert "refused the token (HTTP 403" in capsys.readouterr().err


def test_serve_scale_deploys_the_override_to_the_remote_head(dash, capsys):
    model = APP["args"]["llm_configs"][0]["model_loading_config"]["model_id"]
    assert scale.main(["--address", dash.url, "--model", model, "--replicas", "2"]) == 0
    [config] = dash.deployed
    [dep] = config["applications"][0]["deployments"]
    assert dep == {"name": f"LLMServer:{model}", "num_replicas": 2, "autoscaling_config": None}
    assert config["proxy_location"] == "HeadOnly"  # the head's own settings are kept
    assert f"llm/{model}: 2 replicas" in capsys.readouterr().out


def test_serve_deploy_sends_the_config_to_the_remote_head(dash, monkeypatch, capsys):
    import serve.__main__ as serve_main

    monkeypatch.setattr(serve_main, "wait_running", lambda *a, **k: {"status": "RUNNING"})
    assert serve_cli(["deploy", "--address", dash.url]) == 0
    [config] = dash.deployed
    assert config["applications"][0]["import_path"] == "serve.app:build_app"
    assert "app llm running: http://127.0.0.1:8000/v1" in capsys.readouterr().out


def test_cluster_status_reads_the_remote_head(dash, capsys):
    assert cluster_cli.main(["status", "--address", dash.url]) == 0
    out = capsys.readouterr().out
    assert f"cluster: up, dashboard and Jobs API at {dash.url}, token auth on" in out
    assert "10.10.0.10" in out and "ALIVE" in out and "resources in use: CPU 1/32" in out
    assert "serve apps:" in out and "llm" in out


def test_cluster_status_of_an_unreachable_head_exits_3(remote_env, capsys):
    assert cluster_cli.main(["status", "--address", "http://127.0.0.1:1"]) == 3
    assert "no Ray dashboard answers at http://127.0.0.1:1" in capsys.readouterr().out


def test_cluster_submit_sends_the_job_to_the_remote_head(dash, monkeypatch, token_file):
    calls = []

    def fake_submit(target, entrypoint, **kwargs):
        calls.append((target, entrypoint, kwargs))
        return submit.Submitted("pull-1", 0, "", 1.0)

    monkeypatch.setattr(submit, "submit", fake_submit)
    entry = ["python", "-m", "jobs.pull_model", "--config", "jobs/configs/pull/smollm2.yaml"]
    assert cluster_cli.main(["submit", "--address", dash.url, "--", *entry]) == 0
    [(target, entrypoint, kwargs)] = calls
    assert target.dashboard_url == dash.url and target.token_path == token_file
    assert entrypoint == entry and kwargs["kind"] == "pull"


def test_the_submit_command_line_and_env_name_the_remote_head(token_file):
    target = ClusterAddress("http://10.10.0.10:8265", token_file, source="--address")
    cmd = submit.submit_command(
        target, ["python", "-m", "jobs.x"], submission_id="x-1", kind="x", working_dir=Path(".")
    )
    assert cmd[cmd.index("--address") + 1] == "http://10.10.0.10:8265"
    env = target.client_env()
    assert env["RAY_API_SERVER_ADDRESS"] == "http://10.10.0.10:8265"
    assert env["RAY_AUTH_TOKEN_PATH"] == str(token_file) and env["RAY_AUTH_MODE"] == "token"
