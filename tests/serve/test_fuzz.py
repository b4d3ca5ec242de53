"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis strategies
driven by hypothesis): valid and invalid bodies alike never get a 500 and never take a replica
down."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from serve.deploy import details
from tests.serve.conftest import KEY

pytestmark = pytest.mark.integration


def replica_ids(cluster):
    app = details(cluster)["applications"]["llm"]
    return sorted(
        r["replica_id"]
        for d in app["deployments"].values()
        for r in d["replicas"]
        if r["state"] == "RUNNING"
    )


def fuzz(op, label, mode, examples, seen):
    """``examples`` generated requests for one operation; none may get a 500."""

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        resp = case.call(headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        seen.append(resp.status_code)
        assert resp.status_code < 500, (label, mode, case.body, resp.text[:300])
        if resp.status_code >= 400 and label.startswith("POST /v1/"):
            assert set(resp.json()) == {"error"}

    run()


def test_no_generated_request_gives_a_500_or_kills_a_replica(served):
    before = replica_ids(served["cluster"])
    schema = schemathesis.openapi.from_url(
        served["base"] + "/openapi.json", headers={"Authorization": f"Bearer {KEY}"}
    )
    ops = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}
    assert "POST /v1/chat/completions" in ops
    seen: list[int] = []
    for label, op in sorted(ops.items()):
        chat = label == "POST /v1/chat/completions"
        # Routes without parameters or body have no invalid inputs to generate.
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if chat else [])
        for mode in modes:
            fuzz(op, label, mode, 20 if chat else 2, seen)
    assert len(seen) >= 40 and any(c == 400 for c in seen) and any(c == 200 for c in seen)
    assert httpx.get(served["base"] + "/health", timeout=30).status_code == 200
    assert replica_ids(served["cluster"]) == before
