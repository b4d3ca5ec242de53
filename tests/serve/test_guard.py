"""The Serve app fails closed without an API key off loopback, and caps each request with
OpenAI-shaped 4xx answers before vLLM sees it. No Ray, no vLLM: the pure checks, and the
ingress's FastAPI app (its middlewares) through starlette's TestClient."""

import pytest
from starlette.testclient import TestClient

from serve.guard import RequestLimits, anonymous_problem, limit_problem

ENV = "ONPREM_TEST_GUARD_KEY"


@pytest.mark.parametrize(
    ("host", "key", "allow", "refused"),
    [
        ("0.0.0.0", None, False, True),
        ("10.0.0.5", "", False, True),
        ("::", None, False, True),
        (None, None, False, True),  # unknown bind: fail closed
        ("127.0.0.1", None, False, False),
        ("::1", None, False, False),
        ("localhost", None, False, False),
        ("0.0.0.0", "k3y", False, False),
        ("0.0.0.0", None, True, False),
    ],
)
def test_no_key_off_loopback_is_refused_unless_allowed(host, key, allow, refused):
    problem = anonymous_problem(host, key, allow, ENV)
    assert (problem is not None) == refused
    if refused:
        assert f"http_options.host is {host!r}" in problem and ENV in problem
        assert "Fix:" in problem and "allow_anonymous: true" in problem


@pytest.mark.parametrize(
    ("args", "host", "fails_with"),
    [
        ({}, "0.0.0.0", "not a loopback address"),
        ({"allow_anonymous": True}, "0.0.0.0", "neither in the model store"),  # got past the check
        ({}, "127.0.0.1", "neither in the model store"),
    ],
)
def test_build_app_refuses_to_start_open_to_the_network(
    args, host, fails_with, platform_root, monkeypatch
):
    import serve.app

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(serve.app, "serve_http_host", lambda: host)
    llm = {"model_loading_config": {"model_id": "m", "model_source": "no-such-model"}}
    with pytest.raises(Exception, match=fails_with):
        serve.app.build_app({"llm_configs": [llm], "api_key_env": ENV, **args})


@pytest.fixture
def client(monkeypatch):
    """The ingress's FastAPI app with a stand-in completion route that echoes what it got."""
    from fastapi import Request

    from serve.ingress import ingress_app

    monkeypatch.delenv(ENV, raising=False)
    limits = RequestLimits(max_body_bytes=4000, max_messages=3, max_prompt_chars=100, max_stop=2)
    app = ingress_app(ENV, limits)

    @app.post("/v1/chat/completions")
    @app.post("/v1/completions")
    async def echo(request: Request) -> dict:
        return {"got": await request.json()}

    return TestClient(app)


def chat(n=1, text="hi", **extra):
    return {"model": "m", "messages": [{"role": "user", "content": text}] * n, **extra}


def assert_openai_error(resp, status, code, param=None):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["code"] == code
    assert err["param"] == param
    return err["message"]


def test_a_request_within_the_caps_reaches_the_route_unchanged(client):
    body = chat(3, "x" * 30, stop=["a", "b"])
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and resp.json() == {"got": body}


@pytest.mark.parametrize(
    ("path", "body", "param", "needle"),
    [
        ("/v1/chat/completions", chat(4), "messages", "messages has 4 entries; at most 3"),
        ("/v1/chat/completions", chat(1, "x" * 101), "messages", "101 characters"),
        (
            "/v1/chat/completions",
            {
                **chat(),
                "messages": [{"role": "user", "content": [{"type": "text", "text": "y" * 101}]}],
            },
            "messages",
            "101 characters",
        ),
        ("/v1/completions", {"model": "m", "prompt": ["p" * 60, "q" * 60]}, "prompt", "120 char"),
        ("/v1/chat/completions", chat(stop=["a", "b", "c"]), "stop", "stop has 3 strings"),
        ("/v1/completions", {"model": "m", "prompt": "p", "stop": "s" * 300}, "stop", "300 char"),
        ("/llm2/v1/chat/completions", chat(4), "messages", "at most 3"),  # another route prefix
    ],
)
def test_caps_answer_400_in_the_openai_shape(client, path, body, param, needle):
    message = assert_openai_error(client.post(path, json=body), 400, "limit_exceeded", param)
    assert needle in message


def test_a_body_over_the_byte_cap_gets_413_declared_or_streamed(client):
    big = chat(1, "z" * 5000)
    assert_openai_error(client.post("/v1/chat/completions", json=big), 413, "request_too_large")

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        for _ in range(10):
            yield b"x" * 1000

    resp = client.post("/v1/chat/completions", content=chunks())
    assert_openai_error(resp, 413, "request_too_large")


def test_the_key_is_checked_before_the_caps(client, monkeypatch):
    monkeypatch.setenv(ENV, "s3cret")
    resp = client.post("/v1/chat/completions", json=chat(4))
    assert resp.status_code == 401
    resp = client.post(
        "/v1/chat/completions", json=chat(4), headers={"Authorization": "Bearer s3cret"}
    )
    assert_openai_error(resp, 400, "limit_exceeded", "messages")


def test_limits_are_app_args_with_field_checks():
    from pydantic import ValidationError

    from serve.app import AppArgs

    llm = {"model_loading_config": {"model_id": "m"}}
    args = AppArgs.model_validate({"llm_configs": [llm], "limits": {"max_messages": 10}})
    assert args.limits.max_messages == 10 and args.allow_anonymous is False
    with pytest.raises(ValidationError, match="max_mesages"):
        AppArgs.model_validate({"llm_configs": [llm], "limits": {"max_mesages": 10}})


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": 5}],
        [{"text": None}],
        [{"text": ["a"]}],
        [7, "x"],
        {"text": "a"},
        3,
    ],
)
def test_message_content_of_any_shape_is_left_to_the_schema(content):
    """The caps never raise on a malformed body (a raise here would be a 500): content of
    another shape counts no characters and the request schema answers it."""
    body = {"messages": [{"role": "user", "content": content}], "stop": [1, None]}
    assert limit_problem(body, RequestLimits()) is None


@pytest.mark.parametrize(
    ("host", "key", "allow", "required"),
    [
        ("0.0.0.0", "k3y", False, True),
        ("127.0.0.1", "k3y", False, True),  # a key set at build time stays required
        ("127.0.0.1", None, False, False),
        ("0.0.0.0", None, True, False),  # a gateway authenticates
        (None, "k3y", True, True),
    ],
)
def test_a_key_is_required_at_request_time_when_the_build_needed_one(host, key, allow, required):
    from serve.guard import key_required

    assert key_required(host, key, allow) is required


@pytest.fixture
def required_client(monkeypatch):
    """The ingress app built requiring a key, with a websocket route."""
    from fastapi import WebSocket

    from serve.ingress import ingress_app

    monkeypatch.delenv(ENV, raising=False)
    app = ingress_app(ENV, RequestLimits(), require_key=True)

    @app.post("/v1/chat/completions")
    async def echo() -> dict:
        return {"ok": True}

    @app.websocket("/v1/realtime")
    async def realtime(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("open")
        await ws.close()

    return TestClient(app)


def test_an_empty_key_at_request_time_is_401_when_the_app_required_one(required_client):
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        resp = required_client.post("/v1/chat/completions", json=chat(), headers=headers)
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["type"] == "authentication_error"
    assert required_client.get("/health").status_code == 200


def test_websockets_need_the_key_too(required_client, monkeypatch):
    from starlette.testclient import WebSocketDenialResponse

    with (  # empty variable: refused
        pytest.raises(WebSocketDenialResponse) as denied,
        required_client.websocket_connect("/v1/realtime"),
    ):
        pass
    assert denied.value.status_code == 401
    monkeypatch.setenv(ENV, "s3cret")
    with (  # no header
        pytest.raises(WebSocketDenialResponse) as denied,
        required_client.websocket_connect("/v1/realtime"),
    ):
        pass
    assert denied.value.status_code == 401
    assert denied.value.json()["error"]["code"] == "invalid_api_key"
    auth = {"Authorization": "Bearer s3cret"}
    with required_client.websocket_connect("/v1/realtime", headers=auth) as ws:
        assert ws.receive_text() == "open"


BAD_ADAPTERS = ["base:../x", "base:a/b", "base:..", "base:a..b", "base:/etc", "base:", "base:-a",
                "base:a:b", "base:" + "a" * 65, "base:a\nb"]  # fmt: skip


@pytest.mark.parametrize("model", BAD_ADAPTERS)
def test_adapter_names_outside_the_safe_pattern_are_refused(client, model):
    from serve.guard import adapter_name_problem

    assert "is not accepted" in adapter_name_problem(model)
    resp = client.post("/v1/chat/completions", json={**chat(), "model": model})
    assert_openai_error(resp, 400, "invalid_model_name", "model")


@pytest.mark.parametrize("model", ["base", "base:support", "org/model:v1.2_a-b", "a:" + "b" * 64])
def test_safe_adapter_names_pass(client, model):
    from serve.guard import adapter_name_problem

    assert adapter_name_problem(model) is None
    assert client.post("/v1/chat/completions", json={**chat(), "model": model}).status_code == 200


def test_the_ingress_refuses_an_unsafe_adapter_before_ray_joins_its_path(monkeypatch):
    """Every way a model name reaches the ingress stops at the name (GET /v1/models/<id>, a
    JSON body, a form upload): Ray's own lookup, which joins the name to the adapters' loading
    path, never sees it, and no model replica is called."""
    from ray import serve

    from tests.serve.fake_replicas import FakeModel, ingress_client

    model = FakeModel()
    client = ingress_client(monkeypatch, {"base": model}, lora_paths={"base": "s3://b/lora"})
    asked = []  # Ray's adapter lookup (it reads <loading path>/<adapter>/ from the bucket)

    async def lookup(model_id: str, base_path: str) -> dict:
        asked.append(model_id)
        return {}

    ingress = serve.get_replica_context().servable_object
    monkeypatch.setattr(ingress, "_get_lora_model_metadata_func", lookup)
    assert client.get("/v1/models/base:../../other-bucket/x").status_code == 404  # no route
    assert client.get("/v1/models/base:..").status_code == 404  # <loading path>/.. otherwise
    assert asked == []
    assert client.get("/v1/models/base:cloud-one").status_code == 200  # a safe name is looked up
    assert asked == ["base:cloud-one"]
    resp = client.post("/v1/chat/completions", json={**chat(), "model": "base:../x"})
    assert_openai_error(resp, 400, "invalid_model_name", "model")
    form = {"model": "base:../x", "language": "en"}
    resp = client.post(
        "/v1/audio/transcriptions", data=form, files={"file": ("a.wav", b"RIFF", "audio/wav")}
    )
    assert resp.status_code == 400 and "is not accepted" in resp.json()["error"]["message"]
    assert model.calls == []
    resp = client.post("/v1/chat/completions", json={**chat(), "model": "base:cloud-one"})
    assert resp.status_code == 200 and model.calls  # a safe name on a cloud path goes through


def test_config_adapter_names_follow_the_same_pattern(platform_root):
    from serve.app import llm_config

    raw = {"model_loading_config": {"model_id": "m", "model_source": "s3://b/m"}}
    with pytest.raises(ValueError, match=r"adapter name '\.\./x'.*is not accepted"):
        llm_config({**raw, "adapters": {"../x": "runs/r1"}})


def test_rays_proxy_reads_its_control_headers_before_the_ingress_so_the_gateway_strips_them():
    """Ray 2.60's proxy applies x-request-timeout-seconds and x-request-disconnect-disabled
    itself (serve/_private/proxy.py), before the request reaches the ingress: the ingress cannot
    strip them, so docs/onprem.md tells the gateway to. This pins the fact the docs rely on."""
    import inspect

    from ray.serve._private import proxy
    from ray.serve._private.http_util import (
        parse_disconnect_disabled_header,
        parse_request_timeout_header,
    )

    from tests.conftest import REPO

    assert parse_request_timeout_header({b"x-request-timeout-seconds": b"0"}, 30.0) is None
    assert parse_disconnect_disabled_header({b"x-request-disconnect-disabled": b"?1"}) is True
    code = inspect.getsource(proxy)
    assert "parse_request_timeout_header(" in code and "parse_disconnect_disabled_header(" in code
    doc = (REPO / "docs" / "onprem.md").read_text()
    gateway = doc.split("### What a gateway in front must add")[1].split("\n## ")[0]
    for needle in (
        "x-request-timeout-seconds",
        "x-request-disconnect-disabled",
        "/-/routes",
        "client_max_body_size",
        "TLS",
    ):
        assert needle in gateway, needle
