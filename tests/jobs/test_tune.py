"""``jobs.tune`` through the real ``ray job submit`` on the session cluster, with a small model
vLLM can serve: Ray Tune runs the trials (Ray Train fine-tunes, scored on the selection split
by vLLM through ray.data.llm); the sweep's driver is killed after a trial finished, and the same
command again restores the sweep without running that trial again. (The masterclass's 2-trial
SmolLM2 sweep is the same job on the real model; the story does not run that block: about 12
more minutes of suite.)"""

import json
import threading
import time

import pytest

from cluster.ledger import Ledger
from cluster.submit import submit
from tests.conftest import REPO, running_job

pytestmark = pytest.mark.integration
NAME = "restore-check"


def sweep(cluster, model_dir):
    return submit(
        cluster,
        [
            "python",
            "-m",
            "jobs.tune",
            "--config",
            "jobs/configs/tune/smollm2_quick.yaml",
            f"name={NAME}",
            "finetune=jobs/configs/finetune/tiny_test.yaml",
            f"trial_overrides={{model: {model_dir}, train.max_steps: 2, "
            "checkpoint.every_steps: 2, data.valid: null, merge: false}",
            "selection.per_kind=2",
            "selection.max_tokens=8",
            "selection.engine={engine_kwargs: {dtype: float32, max_model_len: 512, "
            "enforce_eager: true}, cpus: 0.5}",
        ],
        kind="tune",
        working_dir=REPO,
        timeout_s=900,
    )


def scored_trials(cluster):
    """Trials whose selection score is written (their evaluation's eval.json)."""
    folder = cluster.root / "reports" / "eval"
    return sorted(
        p.parent.name.removeprefix(f"tune-{NAME}-")
        for p in folder.glob(f"tune-{NAME}-*/eval.json")
        if not p.parent.name.endswith("-base")
    )


def finetune_rows(cluster):
    ledger = Ledger(f"sqlite:///{cluster.root / '.cluster' / 'ledger.db'}")
    return [w for w in ledger.workloads() if w["kind"] == "finetune" and NAME in w["name"]]


def test_a_killed_sweep_is_restored_without_running_its_finished_trials(
    ray_cluster, serving_model_dir
):
    box = {}
    t = threading.Thread(
        target=lambda: box.setdefault("job", sweep(ray_cluster, serving_model_dir))
    )
    t.start()
    deadline = time.monotonic() + 600
    while not scored_trials(ray_cluster) and time.monotonic() < deadline:
        time.sleep(1)
    (first,) = scored_trials(ray_cluster)
    time.sleep(3)  # its result reaches Tune's state
    client = ray_cluster.job_client()
    sid = running_job(client, "tune")
    client.stop_job(sid)  # the driver is killed; its trials with it
    t.join(timeout=300)
    assert client.get_job_info(sid).status == "STOPPED", box["job"].output[-3000:]
    runs_of_first = [w for w in finetune_rows(ray_cluster) if w["name"].endswith(first)]
    assert len(runs_of_first) == 1

    again = sweep(ray_cluster, serving_model_dir)
    assert again.ok, again.output[-4000:]
    assert "restoring" in again.output and "finished trials are kept" in again.output
    # the finished trial was not trained again: still one fine-tune of it in the ledger
    assert len([w for w in finetune_rows(ray_cluster) if w["name"].endswith(first)]) == 1
    report = ray_cluster.root / "reports" / "tune" / NAME
    trials = (report / "trials.csv").read_text().splitlines()
    assert len(trials) == 3 and all(",DONE," in row for row in trials[1:]), trials
    assert "Best: **" in (report / "report.md").read_text()
    best = (report / "best.yaml").read_text()
    assert "python -m jobs.finetune --config" in best
    ledger_meta = [
        json.loads(w["meta"]) if isinstance(w["meta"], str) else w["meta"]
        for w in finetune_rows(ray_cluster)
    ]
    assert all(m.get("sweep") == NAME for m in ledger_meta)
