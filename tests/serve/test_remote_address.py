"""The operators' commands reach a cluster through ``--address`` alone: `serve.status`,
`serve.scale`, `cluster status` and `cluster submit` against the session's test cluster, with
no address in the environment and the local default pointed at a port nothing listens on, so
a command that ignored the flag would fail instead of finding the test cluster by itself.
(The unit tests in tests/cluster/test_address.py run the same commands against a fake head.)

    pytest -m integration tests/serve/test_remote_address.py
"""

import json

import pytest

import cluster.__main__ as cluster_cli
from serve import scale, status
from tests.conftest import REPO
from tests.serve.conftest import MODEL

pytestmark = pytest.mark.integration


@pytest.fixture
def url(served, monkeypatch) -> str:
    """The test cluster's dashboard URL, known to the commands only through ``--address``."""
    cluster = served["cluster"]
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(cluster.token_path))
    monkeypatch.setenv("ONPREM_DASHBOARD_PORT", "1")  # the local default: nothing there
    monkeypatch.chdir(REPO)
    return cluster.dashboard_url


def test_serve_status_through_the_address_flag(url, capsys):
    assert status.main(["--address", url, "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    dep = state["apps"]["llm"]["deployments"][f"LLMServer:{MODEL}"]
    assert state["apps"]["llm"]["status"] == "RUNNING"
    assert any(r["state"] == "RUNNING" for r in dep["replicas"])


def test_serve_scale_through_the_address_flag(url, capsys):
    # The one-replica `tight` app at the count it has: the override goes through the remote
    # path and Serve applies it in place, leaving the shared app as the other tests expect.
    args = ["--address", url, "--app", "tight", "--model", MODEL, "--replicas", "1", "--wait"]
    assert scale.main(args) == 0
    assert f"tight/{MODEL}: 1 replicas" in capsys.readouterr().out


def test_cluster_status_through_the_address_flag(url, capsys):
    assert cluster_cli.main(["status", "--address", url]) == 0
    out = capsys.readouterr().out
    assert f"cluster: up, dashboard and Jobs API at {url}, token auth on" in out
    assert "ALIVE" in out and "serve apps:" in out and "tight" in out


def test_job_submission_through_the_address_flag(url, capsys):
    entry = ["python", "-c", "print('reached the cluster')"]
    assert cluster_cli.main(["submit", "--address", url, "--", *entry]) == 0
    out = capsys.readouterr().out
    assert "reached the cluster" in out and "succeeded" in out


def test_a_wrong_token_is_refused_with_the_fix(url, tmp_path, monkeypatch, capsys):
    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 64)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(wrong))
    assert status.main(["--address", url]) == 2
    assert "refused the token" in capsys.readouterr().err
