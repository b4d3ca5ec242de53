"""The OpenAI-compatible API of the Serve app (Ray Serve LLM on vLLM), with the official
``openai`` client: answers, streaming, adapters, the API key, errors and a full queue."""

import json
import threading

import httpx
import openai
import pytest

from tests.serve.conftest import ADAPTER, CLOUD_ADAPTER, KEY, MODEL

pytestmark = pytest.mark.integration


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served["base"] + "/v1", api_key=KEY, max_retries=0)


def ask(client, model, text="hello there", **kw):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **{"temperature": 0, **kw}
    )


@pytest.mark.parametrize("model", [MODEL, ADAPTER])
def test_non_streamed_and_streamed_answers_agree(client, model):
    full = ask(client, model, max_tokens=8)
    assert full.object == "chat.completion" and full.choices[0].finish_reason in ("stop", "length")
    assert 0 < full.usage.completion_tokens <= 8 and full.usage.prompt_tokens > 0
    stream = ask(client, model, max_tokens=8, stream=True, stream_options={"include_usage": True})
    parts, usage, finish = [], None, None
    for ev in stream:
        if ev.usage:
            usage = ev.usage
        for ch in ev.choices:
            parts.append(ch.delta.content or "")
            finish = ch.finish_reason or finish
    assert "".join(parts) == full.choices[0].message.content  # greedy: same answer
    assert usage.completion_tokens == full.usage.completion_tokens and finish is not None


def test_the_adapter_changes_the_answers_and_base_answers_stay_the_same_beside_it(client):
    prompts = ["hello there", "what is the return policy", "shipping to canada", "price?"]
    base = [ask(client, MODEL, p, max_tokens=8).choices[0].message.content for p in prompts]
    tuned = [ask(client, ADAPTER, p, max_tokens=8).choices[0].message.content for p in prompts]
    assert base != tuned
    # Base and adapter requests in flight together share the engine's batches (vLLM mixes
    # LoRA and plain rows): each must still get its own model's answer.
    mixed: dict[tuple[str, str], str] = {}

    def one(model, prompt):
        mixed[(model, prompt)] = ask(client, model, prompt, max_tokens=8).choices[0].message.content

    threads = [threading.Thread(target=one, args=(m, p)) for p in prompts for m in (MODEL, ADAPTER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [mixed[(MODEL, p)] for p in prompts] == base
    assert [mixed[(ADAPTER, p)] for p in prompts] == tuned


def test_sse_wire_format_ends_with_done(http):
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
            "stream": True,
        },
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][6:])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"


def test_an_adapter_from_s3_answers_like_the_same_adapter_from_a_folder(client):
    for prompt in ("hello there", "shipping to canada"):
        local = ask(client, ADAPTER, prompt, max_tokens=8).choices[0].message.content
        cloud = ask(client, CLOUD_ADAPTER, prompt, max_tokens=8).choices[0].message.content
        assert cloud == local


def test_models_health_and_seeded_sampling(client, http):
    assert sorted(m.id for m in client.models.list().data) == sorted(
        [MODEL, ADAPTER, CLOUD_ADAPTER]
    )
    assert httpx.get(str(http.base_url) + "/health", timeout=30).json() == {"status": "ok"}
    a = ask(client, MODEL, max_tokens=8, temperature=1.0, seed=11).choices[0].message.content
    b = ask(client, MODEL, max_tokens=8, temperature=1.0, seed=11).choices[0].message.content
    assert a == b


def error_of(resp):
    body = resp.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    return body["error"]


MSG = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "JSON"),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, ""),
        ({"model": MODEL, "messages": "hello"}, 400, "messages"),
        ({"model": MODEL, "messages": MSG, "max_tokens": "many"}, 400, "max_tokens"),
        ({"model": MODEL, "messages": MSG, "max_tokens": -5}, 400, "max_tokens"),
        ({"model": MODEL, "messages": MSG, "max_tokens": 10**9}, 400, "max_tokens"),
        ({"model": MODEL, "messages": MSG, "temperature": "hot"}, 400, "temperature"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "word " * 600}]},
            400,
            "context",
        ),
        ({"model": "gpt-9", "messages": MSG}, 404, "gpt-9"),
        ({"model": "tiny:nope", "messages": MSG}, 404, "nope"),
        # a lone surrogate: valid JSON, text no tokenizer encodes (was a 500 with a traceback)
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "\\udcff hi"}]}', 400,
         "not valid Unicode"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, 400, "messages[0].content"),  # was 200
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    ],
)  # fmt: skip
def test_bad_requests_get_openai_errors_never_5xx(http, body, status, needle):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    resp = http.post("/v1/chat/completions", headers={"content-type": "application/json"}, **kw)
    assert resp.status_code == status, resp.text
    assert needle.lower() in error_of(resp)["message"].lower()
    for internal in ("Traceback", "site-packages", "pid=", "ip=", "actor_id"):
        assert internal not in resp.text


def test_a_browsers_preflight_is_answered_without_the_key(served):
    headers = {
        "Origin": "https://chat.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    resp = httpx.options(served["base"] + "/v1/chat/completions", headers=headers, timeout=30)
    assert resp.status_code == 200 and "access-control-allow-origin" in resp.headers
    resp = httpx.post(
        served["base"] + "/v1/chat/completions",
        json={"model": MODEL, "messages": MSG},
        headers={"Origin": "https://chat.example.com"},
        timeout=30,
    )
    assert resp.status_code == 401  # the request itself still needs the key


def test_api_key_is_required_when_configured(served):
    url = served["base"] + "/v1/chat/completions"
    body = {"model": MODEL, "messages": MSG}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + KEY}):
        resp = httpx.post(url, json=body, headers=headers, timeout=30)
        assert resp.status_code == 401
        assert error_of(resp)["code"] == "invalid_api_key"
    assert httpx.get(served["base"] + "/v1/models", timeout=30).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served["base"] + "/v1", api_key="nope", max_retries=0).models.list()


def test_full_queue_answers_503_with_retry_after(served):
    url = served["base"] + "/tight/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "count"}], "max_tokens": 64}
    codes, retry, refusals = [], [], []

    def fire():
        r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        codes.append(r.status_code)
        if r.status_code == 503:
            retry.append(r.headers.get("retry-after"))
            refusals.append(r.text[:300])

    threads = [threading.Thread(target=fire) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 503 in codes and 200 in codes, (codes, refusals[:2])
    assert set(codes) <= {200, 503} and set(retry) == {"1"}, (codes, retry, refusals[:2])
    assert all('"code":"overloaded"' in r.replace(" ", "") for r in refusals), refusals[:2]
