"""Test tiers (strict markers): unmarked = unit (no Ray: ``ray.init`` raises), ``integration``
(one real local Ray cluster for the whole session), ``slow`` (the real SmolLM2 model), ``gpu``
(skipped without CUDA). ``make test`` runs every tier this machine can run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).with_name("assets")
# Several checkouts can test on one machine at once: ONPREM_TEST_PORT_OFFSET moves every port
# the tests open (clusters, dashboards, Serve) by the same amount.
PORT_OFFSET = int(os.environ.get("ONPREM_TEST_PORT_OFFSET", "0"))


def port(n: int) -> int:
    """A test port, moved by ``ONPREM_TEST_PORT_OFFSET``."""
    return n + PORT_OFFSET


TEST_PORTS = {
    "ONPREM_GCS_PORT": str(port(6391)),
    "ONPREM_DASHBOARD_PORT": str(port(8266)),
    "ONPREM_CLIENT_PORT": str(port(9102)),
    "ONPREM_AGENT_PORT": str(port(52366)),
}

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


@pytest.fixture(autouse=True)
def _no_ray_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Unit tests must not start or join a Ray cluster by accident."""
    if any(m in request.node.keywords for m in ("integration", "slow", "gpu")):
        yield
        return
    import ray

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


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct in the project's model store, pulled once (~30 s)."""
    store = REPO / "models"
    target = store / "smollm2-135m-instruct"
    if not (target / "manifest.json").is_file():
        env = {**os.environ, "ONPREM_STORE": str(store)}
        subprocess.run(
            [sys.executable, "-m", "jobs.pull_model", "--config", "jobs/configs/pull/smollm2.yaml"],
            cwd=REPO,
            env=env,
            check=True,
        )
    return target


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


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One real local Ray head (test ports, its own root) for every integration test."""
    from cluster.local import LocalCluster

    root = tmp_path_factory.mktemp("platform")
    auth = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_API_SERVER_ADDRESS")
    saved = {k: os.environ.get(k) for k in [*TEST_PORTS, "ONPREM_ROOT", *auth]}
    os.environ.update(TEST_PORTS)
    os.environ["ONPREM_ROOT"] = str(root)
    cluster = LocalCluster.from_env()
    install_test_token(cluster.root)
    os.environ.update(cluster.client_env())  # this process is a client of the test cluster
    cluster.down()  # leftovers of an interrupted earlier run
    cluster.up()
    try:
        yield cluster
    finally:
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
