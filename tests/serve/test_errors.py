"""No internals in any response: the ingress's real routes in front of stand-in replicas that
raise what real ones raise (a replica's exception arrives as a RayTaskError whose text is the
remote traceback with pid, IP and actor id; a replica lost twice; Ray LLM's own exception
carrying an internal message), a body nested past the parser's limit, and a stream broken
half-way. Each answer is OpenAI's shape holding a generic message and the request id; the
traceback is in the replica's log under that id. No Ray, no vLLM (tests/serve/fake_replicas.py).
"""

import json
import logging

import pytest
from fastapi import HTTPException

from tests.serve.fake_replicas import (
    INTERNALS,
    TRACEBACK,
    FakeModel,
    chunks,
    ingress_client,
    raises,
    remote_error,
    replica_lost,
    stream_chunk,
)

RID = "req-7f3a"
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def replica_log():
    """``replica_log()`` starts recording what the ingress logs (Ray Serve writes the
    ``ray.serve`` logger to the replica's log); call it after building the client, whose
    Ray imports set that logger's handlers up afresh."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("ray.serve")

    def start() -> list[logging.LogRecord]:
        logger.addHandler(handler)
        return records

    yield start
    logger.removeHandler(handler)


def assert_no_internals(text: str) -> None:
    for needle in INTERNALS:
        assert needle not in text, f"{needle!r} leaked into: {text}"


def assert_generic(resp, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    assert_no_internals(resp.text)
    err = resp.json()["error"]
    assert set(resp.json()) == {"error"} and set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "server_error" and err["code"] == code and err["param"] is None
    assert f"request id {RID}" in err["message"]
    return err["message"]


def post(client, body=CHAT, path="/v1/chat/completions"):
    return client.post(path, json=body, headers={"x-request-id": RID})


@pytest.mark.parametrize(
    "exc",
    [
        remote_error(TypeError("TextEncodeInput must be Union[...]")),  # the lone surrogate
        remote_error(KeyError("image_url")),
        RuntimeError(TRACEBACK),  # any local exception whose text holds internals
        HTTPException(500, TRACEBACK),
    ],
    ids=["remote-TypeError", "remote-KeyError", "local-RuntimeError", "HTTPException-500"],
)
def test_an_unexpected_error_is_a_500_with_the_request_id_and_the_traceback_in_the_log(
    monkeypatch, replica_log, exc
):
    client = ingress_client(monkeypatch, {"tiny": FakeModel(chat=raises(exc))})
    records = replica_log()
    message = assert_generic(post(client), 500, "internal_error")
    assert message.startswith("the server had an error while processing this request")
    logged = [r for r in records if RID in r.getMessage() and r.exc_info]
    assert logged and logged[0].levelno == logging.ERROR
    assert logged[0].exc_info[1] is exc  # the whole exception, traceback and all, in the log


def test_rays_llm_error_from_the_replica_is_generic_too(monkeypatch):
    """Ray LLM's own exception type (raised from an engine ErrorResponse) at a 5xx status:
    its message is not the client's business."""
    from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException

    exc = OpenAIHTTPException(503, message=TRACEBACK, type="EngineDeadError")
    client = ingress_client(monkeypatch, {"tiny": FakeModel(chat=raises(exc))})
    assert_generic(post(client), 503, "internal_error")


def test_a_replica_lost_twice_is_a_503_without_its_actor_id_pid_or_ip(monkeypatch, replica_log):
    model = FakeModel(chat=raises(replica_lost()))
    client = ingress_client(monkeypatch, {"tiny": model})
    records = replica_log()
    resp = post(client)
    assert_generic(resp, 503, "replica_unavailable")
    assert resp.headers["retry-after"] == "1"
    assert [m for m, _ in model.calls] == ["chat", "chat"]  # retried once, on another replica
    assert any(RID in r.getMessage() and r.exc_info for r in records)


def test_a_replica_lost_once_is_retried_and_answers(monkeypatch):
    lost = [replica_lost()]

    async def once_then_fine(body):
        if lost:
            raise lost.pop()
        yield stream_chunk("hi")

    model = FakeModel(chat=once_then_fine)
    resp = post(ingress_client(monkeypatch, {"tiny": model}), {**CHAT, "stream": True})
    assert resp.status_code == 200 and "hi" in resp.text and len(model.calls) == 2


def test_a_full_queue_is_a_503_with_retry_after_on_every_route(monkeypatch):
    from ray.serve.exceptions import BackPressureError

    full = BackPressureError(num_queued_requests=64, max_queued_requests=64)
    model = FakeModel(chat=raises(full), embeddings=raises(full))
    client = ingress_client(monkeypatch, {"tiny": model})
    for path, body in [
        ("/v1/chat/completions", CHAT),
        ("/v1/embeddings", {"model": "tiny", "input": "hi"}),
    ]:
        resp = post(client, body, path)
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert resp.json()["error"]["code"] == "overloaded"


def test_a_stream_broken_half_way_ends_with_a_generic_error_event(monkeypatch, replica_log):
    broken = chunks(stream_chunk("Hel"), then=remote_error(RuntimeError("engine died")))
    client = ingress_client(monkeypatch, {"tiny": FakeModel(chat=broken)})
    records = replica_log()
    resp = post(client, {**CHAT, "stream": True})
    assert resp.status_code == 200  # sent with the first chunk
    events = [e.removeprefix("data: ") for e in resp.text.strip().split("\n\n")]
    assert "Hel" in events[0] and events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "stream_interrupted" and f"request id {RID}" in error["message"]
    assert_no_internals(resp.text)
    assert any(RID in r.getMessage() and r.exc_info for r in records)


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # json.loads: RecursionError
        '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "x": '
        + "[" * 5_000
        + "]" * 5_000
        + "}",
    ],
    ids=["whole-body", "one-field"],
)
def test_json_nested_past_the_recursion_limit_is_a_400(monkeypatch, body):
    model = FakeModel()
    client = ingress_client(monkeypatch, {"tiny": model})
    resp = client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_json" and not model.calls
    assert_no_internals(resp.text)


def test_nesting_within_the_parsers_limit_never_reaches_a_500(monkeypatch):
    """Deep enough for the caps' own walk to exceed Python's recursion limit, not the
    parser's: still a 400, never a 500."""
    import sys

    depth = sys.getrecursionlimit() - 60
    body = {**CHAT, "tools": [{"type": "function", "function": {"parameters": {}}}]}
    raw = json.dumps(body)[:-1] + ', "response_format": ' + "[" * depth + "]" * depth + "}"
    client = ingress_client(monkeypatch, {"tiny": FakeModel()})
    resp = client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= resp.status_code < 500, resp.text


def test_a_body_that_is_not_json_is_a_400_naming_json(monkeypatch):
    client = ingress_client(monkeypatch, {"tiny": FakeModel()})
    for raw in (b"{not json", b'{"model": "tiny", "messages": [{"content": "\xff\xfe"}]}'):
        resp = client.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
        assert resp.status_code == 400, resp.text
        assert "JSON" in resp.json()["error"]["message"]


def test_a_4xx_raised_in_the_replica_keeps_its_message_not_the_traceback(monkeypatch):
    exc = remote_error(HTTPException(400, "max_tokens must be at least 1"))
    client = ingress_client(monkeypatch, {"tiny": FakeModel(chat=raises(exc))})
    resp = post(client)
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.json()["error"]["message"] == "max_tokens must be at least 1"
    assert_no_internals(resp.text)


def test_an_engine_error_response_keeps_its_status_and_message(monkeypatch):
    """vLLM's own 4xx (an ErrorResponse from the replica) reaches the client as vLLM wrote
    it: that is the message that names the field."""
    from ray.serve.llm.openai_api_models import ErrorResponse

    too_long = ErrorResponse(
        error={
            "message": "This model's maximum context length is 512 tokens",
            "type": "BadRequestError",
            "code": 400,
        }
    )
    client = ingress_client(monkeypatch, {"tiny": FakeModel(chat=chunks(too_long))})
    resp = post(client)
    assert resp.status_code == 400 and "maximum context length" in resp.text


def test_schema_errors_name_the_field_without_echoing_the_value(monkeypatch):
    client = ingress_client(monkeypatch, {"tiny": FakeModel()})
    resp = post(client, {**CHAT, "max_tokens": "many" * 50})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["param"] == "max_tokens" and err["code"] == "invalid_parameter"
    assert "many" not in err["message"]


def test_an_unknown_model_is_a_404_in_the_openai_shape(monkeypatch):
    client = ingress_client(
        monkeypatch, {"tiny": FakeModel()}, local_adapters={"tiny": ["support"]}
    )
    for model in ("gpt-9", "tiny:nope"):
        resp = post(client, {**CHAT, "model": model})
        assert resp.status_code == 404, resp.text
        err = resp.json()["error"]
        assert err["code"] == "model_not_found" and err["param"] == "model"
        assert model in err["message"] and "tiny:support" in err["message"]
    assert client.get("/v1/models/tiny:nope").status_code == 404
