"""``jobs.finetune`` through the real ``ray job submit``: Ray Train's TorchTrainer with 2
workers, DeepSpeed ZeRO-2 and ZeRO-3, PEFT LoRA, checkpoints, a killed worker, a stopped and
resumed run, and bad input."""

import json
import signal
import threading
import time

import pytest

from cluster.ledger import Ledger
from tests.conftest import submit_finetune

pytestmark = pytest.mark.integration
CONFIG = "jobs/configs/finetune/tiny_test.yaml"


def finetune(cluster, *overrides, timeout_s=600):
    return submit_finetune(cluster, CONFIG, *overrides, timeout_s=timeout_s)


def read_metrics(run_dir):
    path = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.parametrize("stage", [2, 3])
def test_lora_trains_with_deepspeed_zero_on_two_workers(ray_cluster, tiny_model_dir, stage):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    name = f"tiny-zero{stage}"
    job = finetune(
        ray_cluster,
        f"model={tiny_model_dir}",
        f"run_name={name}",
        f"deepspeed.zero_stage={stage}",
        "train.max_steps=8",
        "checkpoint.every_steps=4",
        "train.eval_every=4",
        "merge=true",
        "register_model=true",
    )
    assert job.ok, job.output[-3000:]
    assert "[finetune] step 8/8" in job.output and "ETA" in job.output
    # workers log no Ray Data progress bars (the step line says where training is)
    assert "Running Dataset train_" not in job.output, job.output[-3000:]
    run_dir = ray_cluster.root / "runs" / name
    result = json.loads((run_dir / "result.json").read_text())
    assert result["world_size"] == 2 and result["zero_stage"] == stage
    assert result["steps"] == 8 and result["tokens_seen"] > 0 and result["tokens_per_s"] > 0
    assert result["train_loss_last"] < result["train_loss_first"]
    assert result["eval_loss"] < result["eval_loss_first"]
    assert result["device"] == "cpu" and result["usage"]["CPU"]["cpus"] == 2
    ds = json.loads((run_dir / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == stage and ds["bf16"]["enabled"] is False
    steps = [m["step"] for m in read_metrics(run_dir)]
    assert steps == list(range(1, 9))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(base, run_dir / "adapter")
    assert any("lora_" in n for n, _ in tuned.named_parameters())
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged")
    assert merged.config.num_hidden_layers == 1
    assert (ray_cluster.root / "models" / name / "manifest.json").is_file()
    rows = [
        r
        for r in Ledger(f"sqlite:///{ray_cluster.root / '.cluster' / 'ledger.db'}").usage()
        if r["submission_id"] == job.submission_id
    ]
    assert rows and rows[0]["kind"] == "finetune" and rows[0]["cpus"] == 2


def _wait_for_checkpoint(run_dir, min_step, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [m for m in read_metrics(run_dir) if m.get("checkpoint") and m["step"] >= min_step]
        if done:
            return done[-1]["step"]
        time.sleep(0.3)
    raise AssertionError("no checkpoint written in time")


def _in_background(fn):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("result", fn()), daemon=True)
    t.start()
    return t, box


def test_a_killed_worker_resumes_from_the_last_checkpoint(ray_cluster, small_model_dir):
    name = "small-killed"
    run_dir = ray_cluster.root / "runs" / name
    t, box = _in_background(
        lambda: finetune(
            ray_cluster,
            f"model={small_model_dir}",
            f"run_name={name}",
            "train.max_steps=12",
            "checkpoint.every_steps=4",
            "checkpoint.max_failures=1",
            "train.micro_batch_size=8",
            "data.valid=null",
        )
    )
    ckpt_step = _wait_for_checkpoint(run_dir, 4)
    workers = [
        p for p in ray_cluster.processes() if "RayTrainWorker" in " ".join([*p.cmdline(), p.name()])
    ]
    assert len(workers) == 2
    killed_at = max(m["step"] for m in read_metrics(run_dir))
    workers[-1].send_signal(signal.SIGKILL)
    t.join(timeout=600)
    job = box["result"]
    assert job.ok, job.output[-3000:]
    assert "workers restarted (restart 1): resumed from the checkpoint at step" in job.output
    rows = read_metrics(run_dir)
    steps = [m["step"] for m in rows]
    assert steps[-1] == 12 and steps.count(12) == 1
    first_after = next(m for m in rows if m["restarts"] == 1)
    resumed_from = first_after["step"] - 1
    # It went on from a checkpoint taken before the kill: the step count continued.
    assert resumed_from % 4 == 0 and ckpt_step <= resumed_from <= killed_at
    assert resumed_from > 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["restarts"] == 1 and result["steps"] == 12


def ledger_rows(cluster, submission_id):
    ledger = Ledger(f"sqlite:///{cluster.root / '.cluster' / 'ledger.db'}")
    return [r for r in ledger.usage() if r["submission_id"] == submission_id]


def test_a_run_that_fails_mid_training_is_charged_both_workers(ray_cluster, small_model_dir):
    name = "small-fails"
    run_dir = ray_cluster.root / "runs" / name
    t, box = _in_background(
        lambda: finetune(
            ray_cluster,
            f"model={small_model_dir}",
            f"run_name={name}",
            "train.max_steps=40",
            "checkpoint.every_steps=4",
            "checkpoint.max_failures=0",  # no restart: the first worker failure ends the run
            "train.micro_batch_size=8",
            "data.valid=null",
        )
    )
    _wait_for_checkpoint(run_dir, 4)
    workers = [
        p for p in ray_cluster.processes() if "RayTrainWorker" in " ".join([*p.cmdline(), p.name()])
    ]
    assert len(workers) == 2
    killed_at = time.time()
    workers[-1].send_signal(signal.SIGKILL)
    t.join(timeout=600)
    job = box["result"]
    assert not job.ok and "training failed" in job.output, job.output[-3000:]
    assert ray_cluster.job_client().get_job_info(job.submission_id).driver_exit_code == 1
    assert max(m["step"] for m in read_metrics(run_dir)) < 40  # it did fail mid-training
    (row,) = ledger_rows(ray_cluster, job.submission_id)
    assert row["kind"] == "finetune" and row["status"] == "FAILED"
    # both workers (1 CPU each), not the driver's one CPU, for the run's wall time until it failed
    assert row["accelerator_type"] == "CPU" and row["cpus"] == 2 and row["gpus"] == 0
    assert row["cpu_hours"] == pytest.approx(2 * row["hours"])
    first_step = read_metrics(run_dir)[0]["time"]
    assert killed_at - first_step < row["hours"] * 3600 < job.seconds


def test_a_stopped_run_resumes_by_name(ray_cluster, small_model_dir):
    name = "small-stopped"
    run_dir = ray_cluster.root / "runs" / name
    args = [
        f"model={small_model_dir}",
        f"run_name={name}",
        "train.max_steps=16",
        "checkpoint.every_steps=4",
        "train.micro_batch_size=8",
        "data.valid=null",
    ]
    t, _box = _in_background(lambda: finetune(ray_cluster, *args))
    _wait_for_checkpoint(run_dir, 4)
    client = ray_cluster.job_client()
    sid = next(
        j.submission_id
        for j in client.list_jobs()
        if j.submission_id
        and j.submission_id.startswith("finetune")
        and str(j.status) in ("RUNNING", "JobStatus.RUNNING")
    )
    client.stop_job(sid)
    t.join(timeout=300)
    assert client.get_job_info(sid).status == "STOPPED"
    (row,) = ledger_rows(ray_cluster, sid)  # closed by the job itself on SIGTERM
    assert row["status"] == "STOPPED" and row["cpus"] == 2 and row["hours"] > 0
    first = read_metrics(run_dir)
    last_ckpt = max(m["step"] for m in first if m.get("checkpoint"))
    again = finetune(ray_cluster, *args)
    assert again.ok, again.output[-3000:]
    assert "has checkpoints: resuming from the latest" in again.output
    rows = read_metrics(run_dir)[len(first) :]
    assert rows[0]["step"] == last_ckpt + 1 and rows[-1]["step"] == 16


def test_bad_data_is_reported_by_line_before_anything_starts(ray_cluster, tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    bad.write_text(
        "\n".join([good, "{oops", '{"messages": [{"role": "user", "content": "q"}]}', good])
    )
    job = finetune(
        ray_cluster,
        f"model={tiny_model_dir}",
        "run_name=bad-data",
        f"data.train={bad}",
        "optim.lrr=1",
    )
    assert not job.ok and "optim.lrr" in job.output  # config errors come first
    job = finetune(ray_cluster, f"model={tiny_model_dir}", "run_name=bad-data", f"data.train={bad}")
    assert not job.ok
    assert "line 2: not valid JSON" in job.output and "line 3: no assistant turn" in job.output
    assert not (ray_cluster.root / "runs" / "bad-data").exists()
    info = ray_cluster.job_client().get_job_info(job.submission_id)
    assert info.driver_exit_code == 2
