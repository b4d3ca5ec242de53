"""Every YAML config the project ships loads into its schema (torchtune's habit)."""

from pathlib import Path

import pytest

from cluster.config import load_config
from cluster.store.pull import PullConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = {
    "pull": PullConfig,
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
