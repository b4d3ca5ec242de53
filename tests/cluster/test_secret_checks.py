"""Placeholder (REPLACE_ME) or short secrets are refused where the platform starts: the Serve
app's builder, every job's command line and `python -m cluster up`, each with a message that
names the variable and the fix, before anything starts."""

import pytest

from cluster.secret_checks import secret_problem, startup_secret_problems

GOOD = "0123456789abcdef" * 4  # 64 characters, as secrets.token_hex(32) makes


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("REPLACE_ME", "still holds the placeholder REPLACE_ME"),
        ("REPLACE_ME_WITH_A_RANDOM_64_HEX_CHARS", "placeholder"),
        ("s3cret", "is 6 characters; at least 32"),
        ("x" * 31, "is 31 characters"),
    ],
)
def test_placeholders_and_short_values_are_refused_with_the_fix(value, needle):
    problem = secret_problem("ONPREM_API_KEY", value)
    assert problem.startswith("ONPREM_API_KEY ") and needle in problem and "Fix:" in problem


def test_usable_and_unset_values_pass():
    assert secret_problem("K", GOOD) is None and secret_problem("K", "x" * 32) is None
    assert secret_problem("K", None) is None and secret_problem("K", "") is None
    assert startup_secret_problems({}) == []


def test_every_secret_the_platform_starts_with_is_checked(tmp_path):
    token = tmp_path / "auth_token"
    token.write_text("REPLACE_ME\n")
    env = {
        "ONPREM_API_KEY": "short",
        "RAY_AUTH_TOKEN": "REPLACE_ME_WITH_A_RANDOM_64_HEX_CHARS",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "ONPREM_LEDGER_URL": "REPLACE_ME",
        "HF_TOKEN": "hf_short_is_fine",  # other issuers' lengths are theirs
    }
    problems = startup_secret_problems(env)
    assert [p.split(" ")[0] for p in problems] == [
        "ONPREM_API_KEY",
        "RAY_AUTH_TOKEN",
        "ONPREM_LEDGER_URL",
        "the",
    ]
    assert str(token) in problems[-1]
    assert startup_secret_problems({"MY_KEY": "short"}, api_key_env="MY_KEY")


def test_a_job_refuses_to_start_with_a_placeholder_token(monkeypatch, capsys):
    from cluster.config import cli_config
    from jobs.cost.config import CostConfig
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "REPLACE_ME_WITH_A_RANDOM_64_HEX_CHARS")
    with pytest.raises(SystemExit) as exit_:
        cli_config(CostConfig, "cost", ["--config", "jobs/configs/cost/demo.yaml"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "RAY_AUTH_TOKEN still holds the placeholder" in err


def test_serve_refuses_to_build_with_a_placeholder_key(platform_root, monkeypatch):
    import serve.app

    monkeypatch.setenv("ONPREM_TEST_SECRET_KEY", "REPLACE_ME")
    monkeypatch.setattr(serve.app, "serve_http_host", lambda: "0.0.0.0")
    llm = {"model_loading_config": {"model_id": "m", "model_source": "no-such-model"}}
    args = {"llm_configs": [llm], "api_key_env": "ONPREM_TEST_SECRET_KEY"}
    with pytest.raises(ValueError, match="ONPREM_TEST_SECRET_KEY still holds the placeholder"):
        serve.app.build_app(args)
    monkeypatch.setenv("ONPREM_TEST_SECRET_KEY", "k3y")
    with pytest.raises(ValueError, match="is 3 characters; at least 32"):
        serve.app.build_app(args)


def test_cluster_up_refuses_before_starting_anything(tmp_path, monkeypatch):
    from cluster.local import ClusterError, LocalCluster

    monkeypatch.setenv("ONPREM_API_KEY", "chosen-by-the-operator")  # 22 characters
    cluster = LocalCluster(root=tmp_path)
    with pytest.raises(ClusterError, match="ONPREM_API_KEY is 22 characters"):
        cluster.up()
    assert not cluster.state_dir.exists()  # no token made, no Ray started
