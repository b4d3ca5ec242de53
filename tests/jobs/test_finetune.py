"""``jobs.finetune`` through the real ``ray job submit``: Ray Train's TorchTrainer with 2
workers, DeepSpeed ZeRO-2, PEFT LoRA, checkpoints; one run taken through a killed worker
(FAILED, charged), a resubmission that resumes it and a stop (STOPPED); bad input refused
before anything starts. ZeRO-3 runs on the multi-node fleet (tests/cluster/test_multinode.py),
as does a worker restarted inside a run (a removed node)."""

import json
import signal
import threading
import time

import pytest

from cluster.ledger import Ledger
from tests.conftest import running_job, submit_finetune

pytestmark = pytest.mark.integration
CONFIG = "jobs/configs/finetune/tiny_test.yaml"


def finetune(cluster, *overrides, timeout_s=600):
    return submit_finetune(cluster, CONFIG, *overrides, timeout_s=timeout_s)


def read_metrics(run_dir):
    path = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def ledger_rows(cluster, submission_id):
    ledger = Ledger(f"sqlite:///{cluster.root / '.cluster' / 'ledger.db'}")
    return [r for r in ledger.usage() if r["submission_id"] == submission_id]


def _wait_for_checkpoint(run_dir, after_step, timeout=300):
    """The step of the first checkpoint written after ``after_step``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [m["step"] for m in read_metrics(run_dir) if m.get("checkpoint")]
        if any(s > after_step for s in done):
            return max(done)
        time.sleep(0.3)
    raise AssertionError(f"no checkpoint after step {after_step} within {timeout} s")


def _in_background(fn):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("result", fn()), daemon=True)
    t.start()
    return t, box


def _workers(cluster):
    return [
        p for p in cluster.processes() if "RayTrainWorker" in " ".join([*p.cmdline(), p.name()])
    ]


def test_a_killed_run_fails_is_charged_resumes_when_resubmitted_and_stops(
    ray_cluster, small_model_dir
):
    """kill a worker -> FAILED (both workers charged) -> the same command again resumes from
    the last checkpoint -> ``ray job stop`` -> STOPPED (charged until the stop)."""
    name = "small-faults"
    run_dir = ray_cluster.root / "runs" / name
    args = [
        f"model={small_model_dir}",
        f"run_name={name}",
        "train.max_steps=40",
        "checkpoint.every_steps=4",
        "checkpoint.max_failures=0",  # no restart: the first worker failure ends the run
        "train.micro_batch_size=8",
        "data.valid=null",
    ]
    t, box = _in_background(lambda: finetune(ray_cluster, *args))
    _wait_for_checkpoint(run_dir, 0)
    workers = _workers(ray_cluster)
    assert len(workers) == 2
    killed_at = time.time()
    workers[-1].send_signal(signal.SIGKILL)
    t.join(timeout=600)
    job = box["result"]
    assert not job.ok and "training failed" in job.output, job.output[-3000:]
    assert ray_cluster.job_client().get_job_info(job.submission_id).driver_exit_code == 1
    first = read_metrics(run_dir)
    assert max(m["step"] for m in first) < 40  # it did fail mid-training
    (row,) = ledger_rows(ray_cluster, job.submission_id)
    assert row["kind"] == "finetune" and row["status"] == "FAILED"
    # both workers (1 CPU each), not the driver's one CPU, for the run's wall time until it failed
    assert row["accelerator_type"] == "CPU" and row["cpus"] == 2 and row["gpus"] == 0
    assert row["cpu_hours"] == pytest.approx(2 * row["hours"])
    assert killed_at - first[0]["time"] < row["hours"] * 3600 < job.seconds

    # Read after the failure: the last checkpoint the run kept is where a resume starts.
    last_ckpt = max(m["step"] for m in first if m.get("checkpoint"))
    t, _box = _in_background(lambda: finetune(ray_cluster, *args))
    _wait_for_checkpoint(run_dir, last_ckpt)
    client = ray_cluster.job_client()
    sid = running_job(client, "finetune")
    client.stop_job(sid)
    t.join(timeout=300)
    assert client.get_job_info(sid).status == "STOPPED"
    (row,) = ledger_rows(ray_cluster, sid)  # closed by the job itself on SIGTERM
    assert row["status"] == "STOPPED" and row["cpus"] == 2 and row["hours"] > 0
    resumed = read_metrics(run_dir)[len(first) :]
    assert resumed[0]["step"] == last_ckpt + 1, (last_ckpt, resumed[:2])
    assert resumed[-1]["step"] < 40  # stopped before the end
    logs = client.get_job_logs(sid)
    assert "has checkpoints: resuming from the latest" in logs


def test_bad_data_is_reported_by_line_before_anything_starts(
    ray_cluster, tiny_model_dir, tmp_path, capsys
):
    """In this process (the data check runs on the cluster's Ray Data): exit code 2, every bad
    line named, no run folder."""
    from jobs import finetune as job

    bad = tmp_path / "bad.jsonl"
    good = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    bad.write_text(
        "\n".join([good, "{oops", '{"messages": [{"role": "user", "content": "q"}]}', good])
    )
    args = ["--config", CONFIG, f"model={tiny_model_dir}", "run_name=bad-data"]
    with pytest.raises(SystemExit) as exit_info:
        job.main([*args, f"data.train={bad}", "optim.lrr=1"])
    assert exit_info.value.code == 2  # a config error stops before the data is read
    assert "optim.lrr" in capsys.readouterr().err
    assert job.main([*args, f"data.train={bad}"]) == 2
    err = capsys.readouterr().err
    assert "line 2: not valid JSON" in err and "line 3: no assistant turn" in err, err
    assert not (ray_cluster.root / "runs" / "bad-data").exists()
