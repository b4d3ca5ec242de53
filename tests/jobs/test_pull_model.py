"""``jobs.pull_model`` through the real ``ray job submit`` CLI against the test cluster."""

import pytest

from cluster.ledger import Ledger
from cluster.store import ModelStore
from cluster.submit import submit
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_submitted_pull_writes_the_store_and_the_ledger(ray_cluster, tiny_model_dir):
    job = submit(
        ray_cluster,
        ["python", "-m", "jobs.pull_model", f"source=path:{tiny_model_dir}", "name=tiny"],
        kind="pull",
        working_dir=REPO,
        timeout_s=300,
    )
    assert job.ok, job.output
    assert "pulled tiny" in job.output
    store = ModelStore(ray_cluster.root / "models")  # the cluster's root, not the upload copy
    assert store.verify("tiny") == []
    rows = [
        w
        for w in Ledger(f"sqlite:///{ray_cluster.root / '.cluster' / 'ledger.db'}").workloads()
        if w["submission_id"] == job.submission_id
    ]
    assert len(rows) == 1 and rows[0]["kind"] == "pull" and rows[0]["status"] == "SUCCEEDED"


def test_bad_config_fails_the_job_with_the_message_and_touches_nothing(ray_cluster):
    job = submit(
        ray_cluster,
        ["python", "-m", "jobs.pull_model", "source=ftp://x/y", "nmae=z"],
        kind="pull",
        working_dir=REPO,
        timeout_s=300,
    )
    assert not job.ok
    assert "unknown scheme ftp:" in job.output and "did you mean 'name'" in job.output
    info = ray_cluster.job_client().get_job_info(job.submission_id)
    assert info.status == "FAILED" and info.driver_exit_code == 2
