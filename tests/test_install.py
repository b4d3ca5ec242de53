"""The GPU install resolves: ``pip install -c constraints.txt -e '.[cuda]'``, what `make install
ENGINE=cuda`, the fleet's setup (cluster/onprem.yaml) and k8s/Dockerfile run, picks the CUDA
build of vLLM 0.29.0 and a CUDA torch with no conflict against the project's pins.

Nothing here has a GPU, so this is the check that the fleet's install is possible at all: pip's
resolver with ``--dry-run --report`` against the registry. It needs PyPI (marked ``registry``)
and runs without this machine's pip configuration: its local find-links folder holds the CPU
torch wheel, which would otherwise satisfy ``torch==2.13.0`` and hide the CUDA build.

    pytest -m registry tests/test_install.py     # ~2.5 min through a proxy without PEP 658
                                                 # metadata (whole wheels are fetched)
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Settings a CI machine may need to reach its registry; every other PIP_* variable (find-links,
# extra indexes, constraints) is dropped with the config files.
KEEP = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT", "PIP_PROXY"}
KEEP |= {"PIP_RETRIES", "PIP_TRUSTED_HOST"}


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[_norm(name)] = version.strip()
    return out


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.mark.registry
@pytest.mark.timeout(900)
def test_the_cuda_install_resolves_vllm_and_a_cuda_torch_against_the_constraints(tmp_path):
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in KEEP}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    cmd += ["--report", str(report), "-c", "constraints.txt", "-e", ".[cuda]"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, f"the CUDA install does not resolve:\n{proc.stderr[-4000:]}"

    found = {_norm(i["metadata"]["name"]): i for i in json.loads(report.read_text())["install"]}
    version = {name: item["metadata"]["version"] for name, item in found.items()}
    assert version["vllm"] == "0.29.0" and version["ray"] == "2.60.0"
    assert version["torch"].split("+")[0] == "2.13.0" and "+cpu" not in version["torch"]
    # A CUDA torch: a +cu local version, or (PyPI's Linux wheel) the CUDA runtime packages it
    # requires, resolved beside it.
    torch_needs = {
        _norm(req.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip())
        for req in found["torch"]["metadata"].get("requires_dist", [])
    }
    cuda = sorted(n for n in torch_needs & set(found) if n.startswith("nvidia-"))
    assert "+cu" in version["torch"] or cuda, f"torch {version['torch']} without CUDA packages"
    assert any(n.startswith("nvidia-nccl") for n in found), "NCCL (multi-GPU) is missing"
    pinned = pins()
    off = {n: (v, pinned[n]) for n, v in version.items() if n in pinned and v != pinned[n]}
    assert not off, f"resolved against the constraints but differs from them: {off}"
