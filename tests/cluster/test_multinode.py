"""Several nodes on one machine (``ray.cluster_utils.Cluster``): two worker nodes advertise
GPUs of one accelerator type and one of another; the fine-tune job's workers land on the
requested type, spread across nodes; the ledger bills that type; a node removed mid-run is
survived by the fine-tune job (it resumes from its last checkpoint) and by the Serve app.

The GPUs are advertised, not real (``ONPREM_SIMULATED_GPUS=1``: workers compute on the CPU
with gloo), which is what placement and failover need."""

import json
import os
import sys
import threading
import time
from collections import Counter

import httpx
import pytest

from cluster.ledger import Ledger
from cluster.local import LocalCluster
from cluster.submit import submit
from serve.deploy import deploy, details, load_config, undeploy, wait_running, with_overrides
from tests.conftest import REPO, free_port, install_test_token

pytestmark = pytest.mark.integration
DASHBOARD = free_port()
SERVE_PORT = free_port()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A head (no GPUs) and three GPU workers: two A100 nodes and one L4 node (each 1 GPU)."""
    import ray
    from ray.cluster_utils import Cluster

    root = tmp_path_factory.mktemp("fleet")
    install_test_token(root)  # the session's token: one per test process (tests/conftest.py)
    saved = dict(os.environ)
    os.environ.update(
        {
            "ONPREM_ROOT": str(root),
            "ONPREM_SIMULATED_GPUS": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
            # jobs run `python`: the project's, as `python -m cluster up` arranges
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        }
    )
    os.environ.pop("RAY_ADDRESS", None)
    # Agent ports other than the defaults: a real cluster on this machine may hold those.
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 2,
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": DASHBOARD,
            "dashboard_agent_listen_port": free_port(),
            "object_store_memory": 150 * 2**20,
            "env_vars": {"ONPREM_ACCELERATOR_TYPE": "CPU"},
        },
    )
    nodes = {}
    kinds = (("a100-1", "A100"), ("a100-2", "A100"), ("l4-1", "L4"))
    for name, accel in kinds:
        nodes[name] = cluster.add_node(
            num_cpus=2,
            num_gpus=1,
            # serve_slot: one per GPU node, to spread Serve replicas one per node
            resources={f"accelerator_type:{accel}": 1, "serve_slot": 1},
            dashboard_agent_listen_port=free_port(),
            object_store_memory=150 * 2**20,
            env_vars={"ONPREM_ACCELERATOR_TYPE": accel},
            # Its own runtime-env folder, as a real node has its own disk: sharing the head's,
            # each node's agent would delete and re-extract the job's working directory (Ray
            # unpacks it with overwrite) under the driver that runs from it.
            runtime_env_dir_name=f"runtime_resources_{name}",
        )
    cluster.wait_for_nodes()
    handle = LocalCluster(dashboard_port=DASHBOARD, root=root)
    _wait_for_jobs_api(handle)
    try:
        yield {"cluster": cluster, "nodes": nodes, "handle": handle, "root": root}
    finally:
        cluster.shutdown()
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def _wait_for_jobs_api(handle, timeout_s=120):
    """Until a trivial job is accepted: the head's job agent starts after the dashboard."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            handle.job_client().submit_job(entrypoint="python -c pass")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def finetune(fleet, *overrides, timeout_s=900):
    return submit(
        fleet["handle"],
        [
            "python",
            "-m",
            "jobs.finetune",
            "--config",
            "jobs/configs/finetune/tiny_test.yaml",
            *overrides,
        ],
        kind="finetune",
        working_dir=REPO,
        timeout_s=timeout_s,
    )


def node_id(node):
    return node.node_id


def _wait(predicate, timeout_s, step_s=0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return False


def test_workers_land_on_the_requested_type_spread_and_are_billed_to_it(fleet, tiny_model_dir):
    """Also the ZeRO-3 run of the suite (parameters sharded across two nodes' workers), merged
    and registered in the model store."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    job = finetune(
        fleet,
        f"model={tiny_model_dir}",
        "run_name=placed",
        "scaling.use_gpu=true",
        "scaling.accelerator_type=A100",
        "scaling.placement=STRICT_SPREAD",
        "scaling.num_workers=2",
        "deepspeed.zero_stage=3",
        "train.max_steps=4",
        "train.eval_every=4",
        "checkpoint.every_steps=4",
        "merge=true",
        "register_model=true",
    )
    assert job.ok, job.output[-3000:]
    assert "[finetune] step 4/4" in job.output and "ETA" in job.output
    # workers log no Ray Data progress bars (the step line says where training is)
    assert "Running Dataset train_" not in job.output, job.output[-3000:]
    run_dir = fleet["root"] / "runs" / "placed"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["zero_stage"] == 3 and result["steps"] == 4
    assert json.loads((run_dir / "ds_config.json").read_text())["zero_optimization"]["stage"] == 3
    assert result["train_loss_last"] < result["train_loss_first"]
    assert result["eval_loss"] < result["eval_loss_first"]
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter"
    )
    assert any("lora_" in n for n, _ in tuned.named_parameters())
    # the merged model, gathered from the ZeRO-3 shards, and its entry in the model store
    assert AutoModelForCausalLM.from_pretrained(run_dir / "merged").config.num_hidden_layers == 1
    assert (fleet["root"] / "models" / "placed" / "manifest.json").is_file()
    placed = result["placement"]
    a100 = {node_id(fleet["nodes"]["a100-1"]), node_id(fleet["nodes"]["a100-2"])}
    assert {p["node_id"] for p in placed} == a100  # both A100 nodes, one worker each
    assert {p["accelerator_type"] for p in placed} == {"A100"}
    ledger = Ledger(f"sqlite:///{fleet['root'] / '.cluster' / 'ledger.db'}")
    rows = [r for r in ledger.usage() if r["submission_id"] == job.submission_id]
    assert [(r["accelerator_type"], r["gpus"], r["nodes"]) for r in rows] == [("A100", 2, 2)]
    assert rows[0]["gpu_hours"] == pytest.approx(2 * rows[0]["hours"])


def test_a_removed_node_is_survived_by_the_fine_tune(fleet, small_model_dir):
    """Two workers on any GPU nodes; one node is removed after a checkpoint; the run resumes
    from it on the node that is left plus the spare one."""
    run_dir = fleet["root"] / "runs" / "node-lost"
    box = {}
    t = threading.Thread(
        target=lambda: box.setdefault(
            "job",
            finetune(
                fleet,
                f"model={small_model_dir}",
                "run_name=node-lost",
                "scaling.use_gpu=true",
                "scaling.num_workers=2",
                "scaling.placement=STRICT_SPREAD",
                "train.max_steps=20",
                "train.micro_batch_size=8",
                "checkpoint.every_steps=4",
                "checkpoint.max_failures=2",
                "data.valid=null",
            ),
        ),
        daemon=True,
    )
    t.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        metrics = run_dir / "metrics.jsonl"
        rows = (
            [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.is_file() else []
        )
        if any(r.get("checkpoint") for r in rows):
            break
        assert t.is_alive(), f"the fine-tune ended before a checkpoint: {box['job'].output[-3000:]}"
        time.sleep(0.5)
    else:
        raise AssertionError("no checkpoint in time")
    busy = _worker_nodes(fleet)
    victim = next(n for n in fleet["nodes"].values() if node_id(n) in busy)
    fleet["cluster"].remove_node(victim, allow_graceful=False)
    t.join(timeout=900)
    job = box["job"]
    assert job.ok, job.output[-3000:]
    assert "workers restarted (restart 1): resumed from the checkpoint at step" in job.output
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 20 and result["restarts"] >= 1
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 20 and steps.count(20) == 1
    assert node_id(victim) not in {p["node_id"] for p in result["placement"]}
    fleet["nodes"] = {k: v for k, v in fleet["nodes"].items() if v is not victim}


def _worker_nodes(fleet):
    """Nodes of the live Ray Train workers, from the state API."""
    from cluster.status import dashboard_get

    actors = dashboard_get(fleet["handle"], "/api/v0/actors?detail=1&limit=1000")
    return {
        a["node_id"]
        for a in actors["data"]["result"]["result"]
        if a.get("class_name") == "RayTrainWorker" and a.get("state") == "ALIVE"
    }


def test_a_removed_node_is_survived_by_the_serve_app(fleet, serving_model_dir):
    handle = fleet["handle"]
    cfg = with_overrides(
        load_config(),
        port=SERVE_PORT,
        models={"tiny": str(serving_model_dir)},
        adapters={},
        llm={
            "engine_kwargs": {"dtype": "float32", "max_model_len": 512, "enforce_eager": True},
            # One replica per GPU node (Serve refuses max_replicas_per_node beside placement
            # bundles); the fine-tune test before this one may have removed an A100 node.
            "placement_group_config": {"bundles": [{"CPU": 0.5, "serve_slot": 1}]},
            "deployment_config": {"autoscaling_config": None, "num_replicas": 2},
        },
        args={"api_key_env": "ONPREM_NO_KEY_HERE"},
    )
    cfg["proxy_location"] = "HeadOnly"  # every "node" is this machine: one proxy, one port
    deploy(handle, cfg)
    wait_running(handle, "llm", timeout_s=300, replicas=2)
    deployments = details(handle)["applications"]["llm"]["deployments"]
    nodes = {r["node_id"] for r in deployments["LLMServer:tiny"]["replicas"]}
    # The ingress every request passes through runs on the head, which is never removed.
    ingress = {r["node_id"] for r in deployments["OnPremIngress"]["replicas"]}
    assert ingress == {fleet["cluster"].head_node.node_id}, ingress
    victim = next(n for n in fleet["nodes"].values() if node_id(n) in nodes)
    url = f"http://127.0.0.1:{SERVE_PORT}/v1/chat/completions"
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    codes: list[int] = []
    stop = threading.Event()

    def load():
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                try:
                    codes.append(c.post(url, json=body).status_code)
                except httpx.HTTPError:
                    codes.append(-1)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for th in threads:
        th.start()
    assert _wait(lambda: codes.count(200) >= 4, 120), Counter(codes)  # the first are slow
    before = len(codes)
    fleet["cluster"].remove_node(victim, allow_graceful=False)
    victim_id = node_id(victim)

    def noticed():  # Serve no longer counts a replica on the removed node as running
        reps = details(handle)["applications"]["llm"]["deployments"]["LLMServer:tiny"]["replicas"]
        return not any(r.get("node_id") == victim_id and r["state"] == "RUNNING" for r in reps)

    assert _wait(noticed, 120), "Serve still routes to the removed node's replica"
    noticed_at = len(codes)
    assert _wait(lambda: len(codes) >= noticed_at + 8, 120), Counter(codes[noticed_at:])
    stop.set()
    for th in threads:
        th.join(timeout=60)
    # Before the removal and once Serve knows the replica is gone: every request succeeds.
    assert before > 0 and set(codes[:before]) == {200}, Counter(codes[:before])
    late = codes[noticed_at:]
    assert set(late) == {200}, Counter(late)
    # While it notices the dead replica: the ingress retries requests that were on it (nothing
    # was sent yet), so at most the requests in flight at the removal may fail (one per thread).
    window = codes[before:noticed_at]
    assert len(window) - window.count(200) <= len(threads), Counter(window)
    undeploy(handle)
