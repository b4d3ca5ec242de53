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
    # ... and becomes the file's at `up`: `cluster env` then gives clients the key the cluster
    # has (a key left in the shell by another cluster answered 401 before)
    cluster.ensure_token()
    assert key.read_text() == "chosen-by-the-operator" and key.stat().st_mode & 0o777 == 0o600


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


def test_cluster_env_is_shell_quoted(tmp_path):
    """A root path holding shell syntax stays a path when the output is eval'd."""
    pwned = tmp_path / "pwned"
    root = tmp_path / 'a $(touch "$PWNED") `touch "$PWNED"` b\'c'
    root.mkdir()
    LocalCluster(root=root).ensure_token()
    env = {**os.environ, "ONPREM_ROOT": str(root), "PWNED": str(pwned)}
    env.pop("ONPREM_API_KEY", None)
    shell = (
        f'eval "$({sys.executable} -m cluster env)" '
        '&& printf "%s\\n%s" "$ONPREM_ROOT" "$ONPREM_API_KEY"'
    )
    run = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    got_root, got_key = run.stdout.split("\n")
    assert got_root == str(root)
    assert got_key == (root / ".cluster" / "api_key").read_text()
    assert not pwned.exists(), "the root path ran as a command"
