"""The chat and completions routes refuse, with a 400 naming what is wrong, the bodies vLLM's
schema let through to a 500 (found by the fuzz test in tests/serve/test_ingress.py): validators
that crash on a field of the wrong type, vLLM's own validation errors, content parts checked
only after validation. No model is called. No Ray, no vLLM engine."""

import pytest

from tests.serve.fake_replicas import FakeModel, ingress_client

MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/chat/completions", {"model": "tiny", "messages": MSG, "structured_outputs": False},
         "does not fit the schema"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "structured_outputs": False},
         "does not fit the schema"),
        ("/v1/chat/completions",
         {"model": "tiny", "messages": MSG, "stream_options": {"include_usage": True}},
         "Stream options can only be defined when `stream=True`"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{
            "role": "tool", "tool_call_id": "c1", "content": [
                {"type": "text", "text": "", "prompt_cache_breakpoint": {"": None}}]}]},
         "messages[0].content[0] fits none of the accepted shapes"),
    ],
)  # fmt: skip
def test_bodies_vllms_schema_let_through_are_a_400(monkeypatch, path, body, needle):
    model = FakeModel()
    client = ingress_client(monkeypatch, {"tiny": model})
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert needle in err["message"] and err["type"] == "invalid_request_error"
    assert not err["message"].startswith("Value error")
    assert model.calls == []


def test_content_parts_reach_the_model_as_lists(monkeypatch):
    """Checked while the body is validated, the parts are a list afterwards: Ray's own copy
    for the replica has nothing left to fail on."""
    model = FakeModel()
    client = ingress_client(monkeypatch, {"tiny": model})
    parts = [{"type": "text", "text": "hi"}]
    resp = client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": parts}]},
    )
    assert resp.status_code == 200, resp.text
    ((_, body),) = model.calls
    assert body.messages[0]["content"] == parts
