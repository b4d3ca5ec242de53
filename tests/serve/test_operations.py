"""Operating the app: autoscaling under load, `serve.scale` and `serve.status`, vLLM's
Prometheus metrics through Ray, and replica-hours in the usage ledger."""

import threading
import time

import httpx
import pytest

from cluster.ledger import Ledger
from cluster.status import running_replicas
from serve import scale, status
from serve.deploy import details
from tests.serve.conftest import KEY, MODEL

pytestmark = pytest.mark.integration


class Load:
    """Closed-loop load: ``users`` threads sending requests until stopped; counts failures."""

    def __init__(self, base, users, max_tokens=32):
        self.url, self.users, self.max_tokens = base + "/v1/chat/completions", users, max_tokens
        self.ok, self.failed, self._stop = 0, [], threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(users)]

    def _run(self):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "tell me more"}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        # A request that waits out a replica roll-over on 2 loaded cores is slow, not failed.
        with httpx.Client(timeout=300, headers={"Authorization": f"Bearer {KEY}"}) as c:
            while not self._stop.is_set():
                try:
                    r = c.post(self.url, json=body)
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self.threads:
            t.join(timeout=180)


def replicas(cluster):
    return running_replicas(details(cluster)["applications"]["llm"])


def replica_ids(cluster, state="RUNNING"):
    """The model's replica ids (in ``state``, or all of them with ``state=None``)."""
    dep = details(cluster)["applications"]["llm"]["deployments"][f"LLMServer:{MODEL}"]
    return {r["replica_id"] for r in dep["replicas"] if state is None or r["state"] == state}


def wait_for(pred, timeout, step=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def test_load_autoscales_then_operators_scale_in_place_and_back_without_a_failed_request(
    served, capsys
):
    """One scenario, as an operator lives it: load -> autoscaled to 2 -> ``serve.scale
    --replicas 2`` under load (in place: the engines keep running) -> ``--min 1 --max 2``
    (back to autoscaling: Serve rolls the replicas over) -> load gone -> down to 1."""
    cluster = served["cluster"]
    assert wait_for(lambda: replicas(cluster) == 1 and len(replica_ids(cluster, None)) == 1, 240)
    with Load(served["base"], users=8) as load:
        # the new replica starts a vLLM engine: ~30 s on a quiet 2-core machine, minutes when busy
        assert wait_for(lambda: replicas(cluster) == 2, 420), "no scale-up under load"
        autoscaled = replica_ids(cluster)
        assert scale.main(["--replicas", "2", "--wait"]) == 0  # one model: --model optional
        fixed = replica_ids(cluster)
    assert autoscaled == fixed, (autoscaled, fixed)  # applied in place: no engine restarted
    with Load(served["base"], users=2, max_tokens=16) as light:
        assert scale.main(["--model", MODEL, "--min", "1", "--max", "2", "--wait"]) == 0
        switched = replica_ids(cluster)
    assert switched and switched.isdisjoint(fixed), (fixed, switched)  # rolled over
    assert wait_for(lambda: replicas(cluster) == 1, 300), "no scale-down after the load"
    assert load.ok > 0 and light.ok > 0
    assert load.failed == [] and light.failed == [], (load.failed, light.failed)
    out = capsys.readouterr().out
    assert f"llm/{MODEL}: 2 replicas" in out and "autoscaling 1..2" in out
    deployment = details(cluster)["applications"]["llm"]["deployments"][f"LLMServer:{MODEL}"]
    auto = deployment["deployment_config"]["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"]) == (1, 2)


def test_scale_rejects_nonsense(served, capsys):
    assert scale.main(["--app", "nope", "--replicas", "1"]) == 2
    assert "no app named 'nope'" in capsys.readouterr().err
    assert scale.main(["--min", "3", "--max", "1"]) == 2
    assert "--max (1) must be >= --min (3)" in capsys.readouterr().err


def test_status_shows_replicas_queue_and_latency(served, capsys):
    httpx.post(
        served["base"] + "/v1/chat/completions",
        timeout=60,
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 4},
    )

    def shown():
        assert status.main([]) == 0
        return capsys.readouterr().out

    # Ray's metrics agent exports what the engines report every few seconds.
    assert wait_for(lambda: "requests," in shown(), 60, step=3)
    out = shown()
    assert "app llm: RUNNING" in out and f"LLMServer:{MODEL}: HEALTHY" in out
    assert "RUNNING on" in out and "waiting 0" in out and "KV cache" in out
    assert "TTFT p50" in out and "e2e p50" in out


def test_metrics_reach_prometheus_through_ray(served):
    httpx.post(
        served["base"] + "/v1/chat/completions",
        timeout=60,
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 4},
    )
    from cluster.status import dashboard_get

    node = dashboard_get(served["cluster"], "/nodes?view=summary")["data"]["summary"][0]
    port = node["raylet"]["metricsExportPort"]
    names = (  # vLLM's engine metrics, through Ray's metrics agent
        "ray_vllm_request_success_total",
        "ray_vllm_generation_tokens_total",
        "ray_vllm_time_to_first_token_seconds_bucket",
        "ray_vllm_num_requests_waiting",
        "ray_vllm_kv_cache_usage_perc",
    )

    def exported():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return all(n in text for n in names)

    assert wait_for(exported, 60, step=2), "metrics not exported"


def test_replica_hours_go_to_the_ledger(served):
    ledger = Ledger(f"sqlite:///{served['cluster'].root / '.cluster' / 'ledger.db'}")
    assert wait_for(
        lambda: any(
            r["kind"] == "serve" and r["gpu_hours"] == 0 and r["cpu_hours"] > 0
            for r in ledger.usage()
        ),
        30,
    )
    rows = [r for r in ledger.usage() if r["kind"] == "serve"]
    assert all(r["accelerator_type"] == "CPU" and r["cpus"] == 0.5 for r in rows)


def test_a_replica_killed_mid_stream_ends_the_stream_with_an_error_event(served):
    """Last here (it costs a replica restart): the replica's process is killed while a stream
    is open; the client gets an OpenAI-shaped error event and ``[DONE]``, not a cut connection,
    and the next request is answered."""
    import json
    import signal

    cluster = served["cluster"]
    assert wait_for(lambda: replicas(cluster) == 1, 300)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "tell me a long story"}],
        "max_tokens": 400,
        "min_tokens": 400,
        "temperature": 0,
        "stream": True,
    }
    events, killed = [], []
    url = served["base"] + "/v1/chat/completions"
    with (
        httpx.Client(timeout=300, headers={"Authorization": f"Bearer {KEY}"}) as c,
        c.stream("POST", url, json=body) as resp,
    ):
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[len("data: ") :])
            if len(events) == 3 and not killed:
                killed = [
                    p
                    for p in cluster.processes()
                    if f"ServeReplica:llm:LLMServer:{MODEL}" in " ".join(p.cmdline())
                ]
                assert len(killed) == 1, [p.cmdline() for p in killed]
                killed[0].send_signal(signal.SIGKILL)
    assert events[-1] == "[DONE]", events[-3:]
    error = json.loads(events[-2])["error"]
    assert error["code"] == "stream_interrupted" and error["type"] == "server_error", error
    for internal in ("Traceback", "pid=", "ip=", "actor_id", "site-packages"):
        assert internal not in events[-2], error  # the replica's death stays in the log
    assert len(events) < 400  # it did end early
    after = httpx.post(
        served["base"] + "/v1/chat/completions",
        timeout=600,  # Serve starts a new replica (a vLLM engine) first
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )
    assert after.status_code == 200, after.text
