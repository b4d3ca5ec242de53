import datetime as dt
import os
import signal

import pytest
from ray.job_submission import JobDetails, JobStatus, JobType

from cluster.ledger import Allocation, Ledger, kind_from_entrypoint
from cluster.usage import Stopped, submission_id, track


@pytest.fixture
def ledger(tmp_path):
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


def test_hours_are_amount_times_wall_time(ledger):
    wid = ledger.start("finetune", "run-a", started_at=T0)
    ledger.finish(
        wid,
        "SUCCEEDED",
        [
            Allocation("H100", gpus=8, cpus=32, nodes=1),
            Allocation("L40S", gpus=4, cpus=16, nodes=1),
        ],
        ended_at=T0 + dt.timedelta(minutes=90),
    )
    rows = {r["accelerator_type"]: r for r in ledger.usage()}
    assert rows["H100"]["gpu_hours"] == pytest.approx(12.0)
    assert rows["H100"]["node_hours"] == pytest.approx(1.5)
    assert rows["L40S"]["cpu_hours"] == pytest.approx(24.0)
    assert ledger.workloads()[0]["status"] == "SUCCEEDED"


def test_usage_is_clipped_to_the_period(ledger):
    wid = ledger.start("serve", "app", started_at=T0)
    ledger.finish(
        wid, "SUCCEEDED", [Allocation("CPU", cpus=2, nodes=1)], ended_at=T0 + dt.timedelta(hours=4)
    )
    rows = ledger.usage(since=T0 + dt.timedelta(hours=1), until=T0 + dt.timedelta(hours=2))
    assert rows[0]["hours"] == pytest.approx(1.0) and rows[0]["cpu_hours"] == pytest.approx(2.0)
    assert ledger.usage(since=T0 + dt.timedelta(hours=5)) == []


def test_unknown_kind_is_refused(ledger):
    with pytest.raises(ValueError, match="kind 'training' is not one of"):
        ledger.start("training", "x")


def test_track_records_success_and_failure(ledger, monkeypatch):
    monkeypatch.setenv(
        "RAY_JOB_CONFIG_JSON_ENV_VAR", '{"metadata": {"job_submission_id": "pull-123"}}'
    )
    assert submission_id() == "pull-123"
    with track("pull", "m1", ledger=ledger):
        pass
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    with pytest.raises(RuntimeError), track("pull", "m2", ledger=ledger):
        raise RuntimeError("boom")
    rows = ledger.workloads()
    assert [(r["name"], r["status"], r["submission_id"]) for r in rows] == [
        ("m1", "SUCCEEDED", "pull-123"),
        ("m2", "FAILED", None),
    ]
    assert all(u["cpus"] == 1.0 for u in ledger.usage())


def test_a_run_that_fails_or_is_stopped_is_charged_what_it_held(ledger):
    workers = Allocation("H100", gpus=16, cpus=32, nodes=2)
    with pytest.raises(RuntimeError), track("finetune", "fails", ledger=ledger, holds=[workers]):
        raise RuntimeError("worker died at step 7")
    # `ray job stop` sends SIGTERM: the block unwinds as Stopped and the record says so
    with pytest.raises(Stopped) as stop, track("finetune", "stops", ledger=ledger, holds=[workers]):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # the handler raises here, as it would inside fit()
    assert stop.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the block
    status = {w["name"]: w["status"] for w in ledger.workloads()}
    assert status == {"fails": "FAILED", "stops": "STOPPED"}
    for row in ledger.usage():
        assert (row["gpus"], row["cpus"], row["nodes"]) == (16, 32, 2)
        assert row["gpu_hours"] == pytest.approx(16 * row["hours"]) and row["hours"] > 0


def test_what_the_work_reports_replaces_what_it_declared(ledger):
    with track("finetune", "ok", ledger=ledger, holds=[Allocation("CPU", cpus=4)]) as run:
        run.allocations = [Allocation("CPU", cpus=2, nodes=1)]
    assert [r["cpus"] for r in ledger.usage()] == [2]


def test_track_survives_a_broken_ledger(tmp_path):
    broken = tmp_path / "ro"
    broken.mkdir()
    broken.chmod(0o500)

    class Broken(Ledger):
        def start(self, *a, **k):
            raise OSError("read-only")

    with track("pull", "m", ledger=Broken(f"sqlite:///{tmp_path / 'x.db'}")) as run:
        assert run.workload_id is None


def _job(
    sid, entrypoint, status=JobStatus.SUCCEEDED, start=1_767_261_600_000, secs=600, metadata=None
):
    return JobDetails(
        type=JobType.SUBMISSION,
        submission_id=sid,
        job_id="02000000",
        entrypoint=entrypoint,
        status=status,
        start_time=start,
        end_time=start + secs * 1000 if status.is_terminal() else None,
        metadata=metadata or {},
    )


def test_import_adds_hand_run_jobs_once_and_skips_self_recorded(ledger):
    ledger.finish(ledger.start("pull", "m", submission_id="mine"), "SUCCEEDED")
    jobs = [
        _job("mine", "python -m jobs.pull_model --config x"),
        _job("by-hand", "python -m jobs.finetune --config y", metadata={"cpus": "2"}),
        _job("bare", "python -m jobs.evaluate --config z"),
        _job("running", "python -m jobs.evaluate", status=JobStatus.RUNNING),
        _job(
            "other",
            "python train.py",
            status=JobStatus.FAILED,
            metadata={"accelerator_type": "H100", "gpus": "8", "nodes": "1"},
        ),
    ]
    assert ledger.import_ray_jobs(jobs) == 3
    assert ledger.import_ray_jobs(jobs) == 0
    rows = {r["submission_id"]: r for r in ledger.workloads()}
    assert rows["by-hand"]["kind"] == "finetune" and rows["by-hand"]["source"] == "ray-import"
    assert rows["other"]["kind"] == "other" and rows["other"]["status"] == "FAILED"
    use = {r["submission_id"]: r for r in ledger.usage()}
    assert use["by-hand"]["cpu_hours"] == pytest.approx(2 * 600 / 3600)
    assert use["other"]["gpu_hours"] == pytest.approx(8 * 600 / 3600)
    assert use["bare"]["cpu_hours"] == pytest.approx(600 / 3600)  # the driver's one CPU
    assert "running" not in rows


def test_import_closes_a_record_whose_driver_died_and_charges_what_it_held(ledger):
    holds = {"accelerator_type": "H100", "gpus": 8.0, "cpus": 16.0, "nodes": 1.0}
    ledger.start("finetune", "r", submission_id="died", meta={"holds": [holds]}, started_at=T0)
    ledger.import_ray_jobs([_job("died", "python -m jobs.finetune", status=JobStatus.STOPPED)])
    (row,) = ledger.workloads()
    assert row["status"] == "STOPPED" and row["ended_at"] is not None
    (use,) = ledger.usage()
    assert use["gpus"] == 8 and use["gpu_hours"] == pytest.approx(8 * 600 / 3600)


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ("python -m jobs.pull_model --config a", "pull"),
        ("python -m jobs.bench_serve", "bench"),
        ("python -m jobs.cost_report", "cost"),
        ("python x.py", "other"),
    ],
)
def test_kind_from_entrypoint(entry, kind):
    assert kind_from_entrypoint(entry) == kind


# -- many nodes: where SQLite is refused, one transaction per record, killed drivers ---------

MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /mnt/onprem nfs4 rw,vers=4.2 0 0
sshfs#me@h: /mnt/fuse fuse.sshfs rw 0 0
//nas/share /mnt/smb cifs rw 0 0
"""


@pytest.mark.parametrize(
    ("db", "env", "refused"),
    [
        ("/mnt/onprem/.cluster/ledger.db", {}, "nfs4 filesystem (mounted at /mnt/onprem)"),
        ("/mnt/fuse/ledger.db", {}, "fuse.sshfs filesystem"),
        ("/mnt/smb/x/ledger.db", {}, "cifs filesystem"),
        ("/home/me/.cluster/ledger.db", {"ONPREM_MULTI_NODE": "1"}, "multi-node cluster"),
        ("/home/me/.cluster/ledger.db", {}, None),
        ("/mnt/onprem/.cluster/ledger.db", {"ONPREM_LEDGER_ALLOW_SQLITE": "1"}, None),
        ("/mnt/onprem2/ledger.db", {}, None),  # a prefix of the name is not the mount
    ],
)
def test_sqlite_is_refused_on_network_filesystems_and_many_nodes(db, env, refused):
    from pathlib import Path

    from cluster.ledger import sqlite_problem

    problem = sqlite_problem(Path(db), MOUNTS, env)
    if refused is None:
        assert problem is None
    else:
        assert refused in problem and f"sqlite:///{db}" in problem
        assert "Fix:" in problem and "postgresql+psycopg://" in problem
        assert "ONPREM_LEDGER_ALLOW_SQLITE=1" in problem


def test_ledger_on_an_nfs_mount_does_not_open(tmp_path, monkeypatch):
    from cluster import ledger as ledger_mod

    monkeypatch.setattr(
        ledger_mod, "_read_mounts", lambda: f"/dev/sda1 / ext4 rw 0 0\nsrv:/x {tmp_path} nfs rw 0 0"
    )
    with pytest.raises(ledger_mod.LedgerConfigError, match="on a nfs filesystem"):
        Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert not (tmp_path / "ledger.db").exists()
    monkeypatch.setenv("ONPREM_LEDGER_ALLOW_SQLITE", "1")
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_finish_writes_status_and_charges_in_one_transaction(ledger):
    wid = ledger.start("finetune", "r", started_at=T0)
    bad = Allocation(None, cpus=1)  # NOT NULL accelerator_type: the charge cannot be written
    with pytest.raises(Exception, match="(?i)not null"):
        ledger.finish(wid, "SUCCEEDED", [Allocation("CPU", cpus=2), bad], ended_at=T0)
    (row,) = ledger.workloads()
    assert row["status"] == "RUNNING" and ledger.usage() == [], "closed without its charges"


def test_a_killed_driver_that_declared_nothing_is_still_charged(ledger, monkeypatch):
    """track() records what the job holds when it starts (the driver's CPU when nothing is
    declared), so closing the record from Ray's job list charges it."""
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"metadata": {"job_submission_id": "k"}}')
    block = track("pull", "m", ledger=ledger)
    block.__enter__()  # the driver is killed inside the block: no __exit__
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    died = _job("k", "python -m jobs.pull_model", status=JobStatus.FAILED, start=now_ms, secs=600)
    ledger.import_ray_jobs([died])
    (use,) = ledger.usage()
    assert use["status"] == "FAILED" and use["cpus"] == 1.0
    assert use["cpu_hours"] == pytest.approx(600 / 3600, abs=0.01)


def test_a_record_closed_twice_is_charged_once(ledger):
    """A driver closing its record while an import of Ray's job list closes it too."""
    wid = ledger.start("finetune", "r", submission_id="both", started_at=T0)
    ledger.finish(
        wid, "SUCCEEDED", [Allocation("H100", gpus=8)], ended_at=T0 + dt.timedelta(hours=1)
    )
    ledger.import_ray_jobs([_job("both", "python -m jobs.finetune", status=JobStatus.STOPPED)])
    ledger.finish(wid, "FAILED", [Allocation("H100", gpus=8)], ended_at=T0 + dt.timedelta(hours=2))
    (row,) = ledger.workloads()
    assert row["status"] == "SUCCEEDED"
    assert [u["gpu_hours"] for u in ledger.usage()] == [pytest.approx(8.0)]
