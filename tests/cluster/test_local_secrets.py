"""The local cluster's secrets without starting it (unit tier): the Serve API key made beside
the Ray token, given to the cluster's processes and to a shell by `python -m cluster env`."""

import os
import subprocess
import sys

from cluster.local import LocalCluster


def test_up_makes_an_api_key_the_clusters_processes_get(tmp_path, monkeypatch):
    monkeypatch.delenv("ONPREM_API_KEY", raising=False)
    cluster = LocalCluster(root=tmp_path)
    cluster.ensure_token()
    key = cluster.api_key_path
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text()) == 64
    assert cluster.state_dir.stat().st_mode & 0o777 == 0o700
    assert cluster.node_env()["ONPREM_API_KEY"] == key.read_text()
    cluster.ensure_token()  # idempotent: the key stays the same
    assert cluster.node_env()["ONPREM_API_KEY"] == key.read_text()
    monkeypatch.setenv("ONPREM_API_KEY", "chosen-by-the-operator")
    assert cluster.node_env()["ONPREM_API_KEY"] == "chosen-by-the-operator"


def test_cluster_env_gives_a_shell_the_api_key_without_printing_it(tmp_path):
    cluster = LocalCluster(root=tmp_path)
    cluster.ensure_token()
    key = cluster.api_key_path.read_text()
    env = {**os.environ, "ONPREM_ROOT": str(tmp_path)}
    env.pop("ONPREM_API_KEY", None)
    printed = subprocess.run(
        [sys.executable, "-m", "cluster", "env"], env=env, capture_output=True, text=True
    ).stdout
    assert key not in printed and f"$(cat {cluster.api_key_path})" in printed
    shell = f'eval "$({sys.executable} -m cluster env)" && printf %s "$ONPREM_API_KEY"'
    got = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True).stdout
    assert got == key
