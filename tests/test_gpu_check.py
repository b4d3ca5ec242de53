"""benchmarks/gpu_check.sh is ready for the first GPU machine: valid bash, the steps the issue
asks for, and a fine-tune whose overrides load into the job's schema (a typo would only show on
the GPU). Fast: reads and parses, runs nothing.

    pytest tests/test_gpu_check.py
"""

import re
import shlex
import subprocess

from cluster.config import load_config
from jobs.train.config import FinetuneConfig
from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _joined() -> str:
    return re.sub(r"\\\n\s*", " ", SCRIPT.read_text())


def test_the_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_it_installs_the_cuda_engine_runs_the_gpu_tier_and_both_servers():
    text = _joined()
    assert "step install make install ENGINE=cuda" in text
    assert "-m pytest -m gpu" in text and "tests/test_gpu.py" in text
    assert "benchmarks/serve_vs_vllm.py" in text and "--concurrency 1,16" in text
    assert "gpu_check.json" in text
    assert "WORKERS=$(( GPUS >= 2 ? 2 : 1 ))" in text  # one GPU: documented fallback


def test_the_finetune_is_zero3_bf16_on_the_gpus_and_its_overrides_load(monkeypatch):
    line = next(x for x in _joined().splitlines() if "python -m jobs.finetune" in x)
    words = shlex.split(line.split(" -- ", 1)[1].replace("$WORKERS", "2"))
    assert words[:4] == ["python", "-m", "jobs.finetune", "--config"]
    monkeypatch.chdir(REPO)
    cfg = load_config(FinetuneConfig, words[4], words[5:])
    assert cfg.deepspeed.zero_stage == 3 and cfg.scaling.use_gpu  # bf16 follows use_gpu
    assert cfg.scaling.num_workers == 2 and cfg.train.max_steps <= 10 and cfg.overwrite
