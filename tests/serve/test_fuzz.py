"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis strategies
driven by hypothesis): valid and invalid bodies, some broken with a lone UTF-16 surrogate in one
string or a field left out (tests/serve/mutations.py), never get a 5xx and never take a replica
down; text the tokenizer cannot encode never reaches vLLM (a 4xx)."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from serve.deploy import details
from tests.serve.conftest import KEY
from tests.serve.mutations import broken, encode

pytestmark = pytest.mark.integration


def replica_ids(cluster):
    app = details(cluster)["applications"]["llm"]
    return sorted(
        r["replica_id"]
        for d in app["deployments"].values()
        for r in d["replicas"]
        if r["state"] == "RUNNING"
    )


def fuzz(op, label, mode, examples, seen, base):
    """``examples`` generated requests for one operation, JSON bodies broken or not; none may
    get a 5xx."""
    auth = {"Authorization": f"Bearer {KEY}"}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=op.as_strategy(generation_mode=mode), data=st.data())
    def run(case, data):
        json_body = case.media_type == "application/json" and isinstance(case.body, dict)
        kind, body = data.draw(broken(case.body)) if json_body else ("as-is", case.body)
        if json_body:  # sent as JSON with lone surrogates escaped (httpx's json= cannot)
            resp = httpx.request(
                case.method,
                base + case.formatted_path,
                content=encode(body),
                params=case.query,
                headers={**auth, "content-type": "application/json"},
                timeout=120,
            )
        else:
            resp = case.call(headers=auth, timeout=120)
        seen.append((label, kind, resp.status_code))
        assert resp.status_code < 500, (label, mode, kind, body, resp.text[:300])
        if resp.status_code >= 400 and label.startswith("POST /v1/"):
            assert set(resp.json()) == {"error"}
        if kind == "surrogate":
            assert 400 <= resp.status_code < 500, (label, body, resp.text[:300])

    run()


def test_no_generated_request_gives_a_500_or_kills_a_replica(served):
    before = replica_ids(served["cluster"])
    schema = schemathesis.openapi.from_url(
        served["base"] + "/openapi.json", headers={"Authorization": f"Bearer {KEY}"}
    )
    ops = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}
    assert "POST /v1/chat/completions" in ops
    seen: list[tuple[str, str, int]] = []
    for label, op in sorted(ops.items()):
        chat = label == "POST /v1/chat/completions"
        # Routes without parameters or body have no invalid inputs to generate.
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if chat else [])
        for mode in modes:
            fuzz(op, label, mode, 20 if chat else 2, seen, served["base"])
    codes = [code for *_, code in seen]
    assert len(seen) >= 40 and 400 in codes and 200 in codes
    chat_kinds = {kind for label, kind, _ in seen if label == "POST /v1/chat/completions"}
    assert chat_kinds == {"as-is", "surrogate", "missing"}
    assert httpx.get(served["base"] + "/health", timeout=30).status_code == 200
    assert replica_ids(served["cluster"]) == before
