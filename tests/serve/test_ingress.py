"""The ingress app's layers in their order (CORS preflights answered without the key, the real
request needing it), the model list with local adapters, and property-based fuzzing of every
route: requests generated from the app's own OpenAPI schema (schemathesis), positive and
negative, some broken with a lone surrogate or a field left out (tests/serve/mutations.py),
sent through the real routes to stand-in replicas that tokenize every text they get with a real
tokenizer. No 5xx, ever; broken text never reaches a replica. No Ray, no vLLM engine."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import REPO
from tests.serve.fake_replicas import FakeModel, chat_answer, ingress_client
from tests.serve.mutations import broken, encode

ENV = "ONPREM_TEST_INGRESS_KEY"
KEY = "k" * 40
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
ORIGIN = "https://chat.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_the_layers_are_in_the_documented_order_and_all_plain_asgi():
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware

    from serve.errors import ErrorMiddleware, RequestIdMiddleware
    from serve.guard import APIKeyMiddleware, RequestChecksMiddleware
    from serve.ingress import ingress_app

    app = ingress_app(ENV)
    layers = [m.cls for m in app.user_middleware]  # outermost first
    assert layers == [
        RequestIdMiddleware,
        CORSMiddleware,
        ErrorMiddleware,
        APIKeyMiddleware,
        RequestChecksMiddleware,
    ]
    assert not any(issubclass(c, BaseHTTPMiddleware) for c in layers)  # no per-chunk tasks


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    return monkeypatch


def test_a_preflight_is_answered_without_the_key_and_the_request_still_needs_it(keyed):
    model = FakeModel()
    client = ingress_client(keyed, {"tiny": model}, env=ENV)
    resp = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "authorization" in resp.headers["access-control-allow-headers"].lower()
    resp = client.post("/v1/chat/completions", json=CHAT, headers={"Origin": ORIGIN})
    assert resp.status_code == 401  # ...and the browser may read why
    assert resp.headers["access-control-allow-origin"] in ("*", ORIGIN)
    resp = client.post("/v1/chat/completions", json=CHAT, headers={"Origin": ORIGIN, **AUTH})
    assert resp.status_code == 200 and len(model.calls) == 1
    # an OPTIONS that is not a preflight is an ordinary request: it needs the key
    assert client.options("/v1/chat/completions").status_code == 401


def test_preflights_follow_the_cors_settings(keyed):
    client = ingress_client(keyed, {"tiny": FakeModel()}, env=ENV, cors_allow_origins=(ORIGIN,))
    ok = client.options("/v1/models", headers=PREFLIGHT)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    other = client.options("/v1/models", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    closed = ingress_client(keyed, {"tiny": FakeModel()}, env=ENV, cors_allow_origins=())
    assert closed.options("/v1/models", headers=PREFLIGHT).status_code == 400


def test_the_model_list_carries_local_adapters_beside_their_base(monkeypatch):
    client = ingress_client(monkeypatch, {"tiny": FakeModel()}, local_adapters={"tiny": ["sup"]})
    listed = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in listed] == ["tiny", "tiny:sup"]
    card = client.get("/v1/models/tiny:sup").json()
    assert card["metadata"]["base_model_id"] == "tiny" and card["owned_by"] == listed[0]["owned_by"]


def test_a_local_adapter_request_goes_to_its_base_models_replicas(monkeypatch):
    model = FakeModel()
    client = ingress_client(monkeypatch, {"tiny": model}, local_adapters={"tiny": ["sup"]})
    resp = client.post("/v1/chat/completions", json={**CHAT, "model": "tiny:sup"})
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == "hello"
    assert model.calls[0][1].model == "tiny:sup"


# -- fuzzing every route -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(REPO / "tests" / "assets" / "tiny-llama")


def _texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def tokenizing_model(tokenizer) -> FakeModel:
    """A stand-in replica that, like vLLM's, feeds every text of a request to the tokenizer
    (a lone surrogate that got this far raises TypeError, as it did in vLLM)."""

    def script(body):
        async def run(body):
            dumped = body.model_dump() if hasattr(body, "model_dump") else body
            for text in _texts(dumped):
                tokenizer.encode(text, add_special_tokens=False)
            yield chat_answer()

        return run(body)

    methods = ("chat", "completions", "embeddings", "score", "tokenize", "detokenize")
    return FakeModel(**{m: script for m in methods}, transcriptions=script)


def fuzz_operation(client, op, mode, examples, seen):
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
        if not json_body:  # a form upload, a GET: as schemathesis sends it
            resp = case.call(headers=AUTH)
        else:
            resp = client.request(
                case.method,
                case.formatted_path,
                content=encode(body),
                params=case.query,
                headers={**AUTH, "content-type": "application/json"},
            )
        seen.append((op.label, kind, resp.status_code))
        assert resp.status_code < 500, (op.label, kind, body, resp.text[:300])
        if resp.status_code >= 400:
            assert set(resp.json()) == {"error"}, resp.text[:300]
        if kind == "surrogate":
            assert 400 <= resp.status_code < 500, (op.label, body, resp.text[:300])

    run()


def test_generated_requests_on_every_route_never_get_a_5xx(keyed, tokenizer):
    model = tokenizing_model(tokenizer)
    client = ingress_client(keyed, {"tiny": model}, local_adapters={"tiny": ["sup"]}, env=ENV)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app, headers=AUTH)
    ops = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}
    assert {"POST /v1/chat/completions", "POST /v1/completions", "POST /tokenize"} <= set(ops)
    seen: list[tuple[str, str, int]] = []
    for label, op in sorted(ops.items()):
        chat = label == "POST /v1/chat/completions"
        # Routes without a body have no invalid inputs to generate.
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if "POST" in label else [])
        for mode in modes:
            fuzz_operation(client, op, mode, 20 if chat else 4, seen)
    kinds = {(label, kind) for label, kind, _ in seen}
    for kind in ("as-is", "surrogate", "missing"):
        assert ("POST /v1/chat/completions", kind) in kinds
    assert any(code == 200 for *_, code in seen) and any(code == 400 for *_, code in seen)
