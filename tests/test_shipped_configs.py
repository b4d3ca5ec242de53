"""Every YAML config the project ships loads into its schema (torchtune's habit)."""

from pathlib import Path

import pytest

from cluster.config import load_config
from cluster.store.pull import PullConfig
from jobs.cost.config import CostConfig
from jobs.eval.config import EvalConfig
from jobs.train.config import FinetuneConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = {
    "pull": PullConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvalConfig,
    "cost": CostConfig,
}


def shipped() -> list[Path]:
    return sorted((REPO / "jobs" / "configs").rglob("*.yaml"))


def test_every_config_folder_has_a_schema():
    folders = {p.parent.name for p in shipped()}
    assert folders <= set(SCHEMAS), f"no schema registered for {folders - set(SCHEMAS)}"


@pytest.mark.parametrize("path", shipped(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_loads(path):
    cfg = load_config(SCHEMAS[path.parent.name], path)
    assert cfg is not None
    assert "python -m jobs." in path.read_text(), "each config's header shows how to run it"
