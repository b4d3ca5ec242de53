"""Test tiers (strict markers): unmarked = unit (no Ray: ``ray.init`` raises), ``integration``
(one real local Ray cluster for the whole session), ``slow`` (the real SmolLM2 model), ``gpu``
(skipped without CUDA). ``make test`` runs every tier this machine can run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).with_name("assets")
# The environment variable CI is set (true, 1, yes) on CI: there a real component the suite
# promises (Postgres, Chromium) that cannot start fails its test instead of skipping it.
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on now, never the same twice in one session, so
    several checkouts (or CI jobs) can test on one machine at once."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def cluster_ports() -> dict[str, str]:
    """Free ports for one local cluster, as ``python -m cluster up`` reads them."""
    names = ("ONPREM_GCS_PORT", "ONPREM_DASHBOARD_PORT", "ONPREM_CLIENT_PORT", "ONPREM_AGENT_PORT")
    return {name: str(free_port()) for name in names}


def require(available: bool, reason: str) -> None:
    """Skip the test when a real component cannot run here, but fail it on CI, where a skip
    would pass the suite without testing what the README promises."""
    if available:
        return
    if ON_CI:
        pytest.fail(f"{reason} (CI=true: a real component the suite needs is missing)")
    pytest.skip(reason)


# One Ray auth token for every cluster this test process talks to: Ray reads the mode and the
# token once per process, so it is set before anything imports Ray, and each test cluster is
# started with a copy of it (token authentication stays on in tests too).
TEST_TOKEN = Path(tempfile.gettempdir()) / f"onprem-test-token-{os.getuid()}"
if not TEST_TOKEN.is_file():
    TEST_TOKEN.write_text(secrets.token_hex(32))
    TEST_TOKEN.chmod(0o600)
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN_PATH"] = str(TEST_TOKEN)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# vLLM computes in float32 in every test cluster, whatever the CPU: greedy answers compared in
# tests then hold on CPUs with bf16 instructions too (there the product would pick bf16).
os.environ["ONPREM_CPU_DTYPE"] = "float32"

# The order tiers run in: unit tests first (fast feedback, and no integration fixture's
# environment can reach them), then the SmolLM2 story and the multi-node fleet, each with a
# cluster of its own, before the session cluster starts: one Ray cluster at a time on 2 cores.
FIRST_CLUSTERS = ("tests/test_story.py", "tests/cluster/test_multinode.py")


def _tier(item: pytest.Item) -> int:
    if not any(m in item.keywords for m in ("integration", "slow", "gpu")):
        return 0
    path = item.nodeid.split("::")[0]
    return 1 + FIRST_CLUSTERS.index(path) if path in FIRST_CLUSTERS else 1 + len(FIRST_CLUSTERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
    items.sort(key=_tier)  # stable: file order within a tier


@pytest.fixture(autouse=True)
def _no_ray_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Unit tests must not start or join a Ray cluster by accident, nor see a test cluster's
    client environment."""
    if any(m in request.node.keywords for m in ("integration", "slow", "gpu")):
        yield
        return
    import ray

    for var in (*CLUSTER_ENV, "ONPREM_ROOT"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*args, **kwargs):
        raise RuntimeError("unit tests must not call ray.init; mark the test integration")

    monkeypatch.setattr(ray, "init", refuse)
    yield


@pytest.fixture
def platform_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty platform root (store, runs, reports, ledger) for one test."""
    monkeypatch.setenv("ONPREM_ROOT", str(tmp_path))
    for var in (
        "ONPREM_STORE",
        "ONPREM_RUNS",
        "ONPREM_REPORTS",
        "ONPREM_STATE",
        "ONPREM_LEDGER_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def build_tiny_model(dest: Path, seed: int = 0, **config_overrides: float) -> Path:
    """A 1-layer random-init Llama with the tiny tokenizer, saved as an HF folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    src = ASSETS / "tiny-llama"
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(src / f, dest / f)
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(src, **config_overrides)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer, 256-wide random model: slow enough per step (~0.5 s) to kill a worker
    mid-run, still far from SmolLM2's size."""
    return build_tiny_model(
        tmp_path_factory.mktemp("small") / "small-llama",
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
    )


def submit_finetune(cluster, config: str, *overrides: str, timeout_s: float = 600):
    """``python -m jobs.finetune --config CONFIG KEY=VALUE...`` through ``ray job submit``."""
    from cluster.submit import submit

    return submit(
        cluster,
        ["python", "-m", "jobs.finetune", "--config", config, *overrides],
        kind="finetune",
        working_dir=REPO,
        timeout_s=timeout_s,
    )


def install_test_token(root: Path) -> Path:
    """Give a test platform root the session's token (see TEST_TOKEN)."""
    token = root / ".cluster" / "auth_token"
    token.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(TEST_TOKEN, token)
    token.chmod(0o600)
    return token


# What the session cluster's fixture sets in this process (it is a client of that cluster).
CLUSTER_ENV = (
    "ONPREM_GCS_PORT",
    "ONPREM_DASHBOARD_PORT",
    "ONPREM_CLIENT_PORT",
    "ONPREM_AGENT_PORT",
    "RAY_API_SERVER_ADDRESS",
    "RAY_ADDRESS",
)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One real local Ray head (free ports, its own root) for the integration tests after the
    story and the fleet; this process is its client until the session ends, then the
    environment is restored."""
    from cluster.local import LocalCluster

    root = tmp_path_factory.mktemp("platform")
    auth = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")
    saved = {k: os.environ.get(k) for k in [*CLUSTER_ENV, "ONPREM_ROOT", *auth]}
    os.environ.update(cluster_ports())
    os.environ["ONPREM_ROOT"] = str(root)
    cluster = LocalCluster.from_env()
    install_test_token(cluster.root)
    os.environ.update(cluster.client_env())
    cluster.up()
    # ray.init() in this process (Ray Data in the fine-tune's data check) joins this cluster
    # instead of starting a Ray of its own.
    os.environ["RAY_ADDRESS"] = f"127.0.0.1:{cluster.gcs_port}"
    try:
        yield cluster
    finally:
        import ray

        ray.shutdown()  # this process's connection first: a driver outliving its GCS aborts
        cluster.down()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# vLLM's CPU attention kernels need a head size of at least 32 (the tiny model's is 8); weights
# drawn wider than transformers' default make greedy answers depend on the prompt instead of
# repeating one token.
SERVING_MODEL = dict(
    hidden_size=128,
    intermediate_size=256,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=64,
    initializer_range=0.4,
)


@pytest.fixture(scope="session")
def serving_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer random Llama that vLLM serves (the smallest its CPU kernels take)."""
    return build_tiny_model(tmp_path_factory.mktemp("serving") / "serving-llama", **SERVING_MODEL)


def build_adapter(model_dir: Path, dest: Path, seed: int = 1) -> Path:
    """A LoRA adapter with non-zero weights (so it changes the answers)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(
        model,
        LoraConfig(
            r=4,
            lora_alpha=64,
            target_modules=["q_proj", "v_proj", "down_proj"],
            init_lora_weights=False,
        ),
    )
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def serving_adapter_dir(serving_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_adapter(serving_model_dir, tmp_path_factory.mktemp("serving-adapter") / "adapter")


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for the tiny model with non-zero weights (so it changes the answers)."""
    return build_adapter(tiny_model_dir, tmp_path_factory.mktemp("tiny-adapter") / "adapter")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 server process on loopback (moto's server mode), reached over HTTP the way a
    MinIO store is: its endpoint URL. Credentials are moto's test ones (s3_env)."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the S3 server (moto) did not start on {endpoint}") from None
            time.sleep(0.3)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def s3_env(endpoint: str) -> dict[str, str]:
    """What a process needs to reach the S3 server: its endpoint and test credentials."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def running_job(client: Any, prefix: str) -> str:
    """The submission id of the running Ray job whose id starts with ``prefix``."""
    return next(
        j.submission_id
        for j in client.list_jobs()
        if (j.submission_id or "").startswith(prefix)
        and str(j.status) in ("RUNNING", "JobStatus.RUNNING")
    )
