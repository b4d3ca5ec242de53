"""What ``cluster.submit`` uploads with a job: never the cluster's secrets, whatever .gitignore
says; and git never tracks them."""

import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from cluster.local import LocalCluster
from cluster.submit import UPLOAD_EXCLUDES, submit_command

REPO = Path(__file__).resolve().parents[2]
SECRET_FILES = [
    "secrets.env",
    ".env",
    "prod.env",
    ".cluster/auth_token",
    ".cluster/api_key",
    ".cluster/secrets.env",
    "k8s/secrets.yaml",
    "k8s/secrets.prod.yaml",
]


def test_submit_command_excludes_secrets_from_the_upload(tmp_path):
    cmd = submit_command(
        LocalCluster(root=tmp_path),
        ["python", "-m", "jobs.pull_model"],
        submission_id="s",
        kind="pull",
        working_dir=tmp_path,
        runtime_env={"env_vars": {"A": "1"}, "excludes": ["data/big/"]},
    )
    env = json.loads(cmd[cmd.index("--runtime-env-json") + 1])
    assert env["env_vars"] == {"A": "1"}
    assert env["excludes"][0] == "data/big/" and set(UPLOAD_EXCLUDES) <= set(env["excludes"])


def test_rays_packaging_leaves_the_secrets_out_even_without_gitignore(tmp_path):
    """Ray's own zip of the working dir, with .gitignore switched off
    (RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1): only the excludes keep the secrets out."""
    from ray._private.runtime_env.packaging import create_package

    project = tmp_path / "project"
    for rel in [*SECRET_FILES, "jobs/pull_model.py", "k8s/secrets.example.yaml"]:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("x")
    out = tmp_path / "pkg.zip"
    create_package(str(project), out, include_gitignore=False, excludes=UPLOAD_EXCLUDES)
    names = {n.rstrip("/") for n in zipfile.ZipFile(out).namelist()}
    assert "jobs/pull_model.py" in names
    assert not names & set(SECRET_FILES), names & set(SECRET_FILES)


@pytest.mark.parametrize("rel", SECRET_FILES)
def test_git_ignores_secret_files(rel):
    proc = subprocess.run(["git", "check-ignore", "-q", rel], cwd=REPO)
    assert proc.returncode == 0, f"{rel} is not ignored by .gitignore"


def test_git_keeps_the_secrets_example():
    proc = subprocess.run(["git", "check-ignore", "-q", "k8s/secrets.example.yaml"], cwd=REPO)
    assert proc.returncode == 1


@pytest.mark.integration
def test_a_job_past_its_timeout_is_stopped_on_the_cluster(ray_cluster):
    """A client-side timeout alone would leave the job running, holding the cluster's CPUs."""
    from cluster.submit import submit

    with pytest.raises(TimeoutError, match="was stopped") as info:
        submit(
            ray_cluster,
            ["python", "-c", "import time; print('sleeping', flush=True); time.sleep(600)"],
            kind="sleep",
            working_dir=REPO / "tests" / "assets" / "tiny-llama",  # small upload
            timeout_s=20,
        )
    sid = str(info.value).split()[1]
    client = ray_cluster.job_client()
    deadline = time.monotonic() + 60
    while client.get_job_status(sid).value != "STOPPED" and time.monotonic() < deadline:
        time.sleep(1)
    assert client.get_job_status(sid).value == "STOPPED"
