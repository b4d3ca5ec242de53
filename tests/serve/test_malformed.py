"""Malformed text and messages are a 400 before the engine: lone UTF-16 surrogates anywhere in a
body, messages without the content OpenAI requires, parts without their field. The pure checks,
the same through the ingress's real routes (no model is called), property-based tests
(hypothesis) that any lone surrogate anywhere is found, and the tokenizer facts the checks rest
on (the test tokenizer: byte-level BPE like SmolLM2's)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve.malformed import malformed_problem, messages_problem, unencodable_text_path
from tests.conftest import REPO
from tests.serve.fake_replicas import FakeModel, ingress_client

USER = {"role": "user", "content": "hi"}


def chat(*messages, **extra):
    return {"model": "tiny", "messages": list(messages or [USER]), **extra}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat({"role": "user", "content": "\udcff hi"}), "messages[0].content"),
        (chat(USER, {"role": "user", "content": [{"type": "text", "text": "a\ud800"}]}),
         "messages[1].content[0].text"),
        ({"model": "tiny", "prompt": ["ok", "\udfff"]}, "prompt[1]"),
        (chat(stop=["\udcff"]), "stop[0]"),
        (chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {
            "properties": {"\ud83d": {}}}}}]), "tools[0].function.parameters.properties.\ud83d"),
        ({"model": "tiny", "input": "\ude00"}, "input"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_anywhere_is_named(body, param):
    problem = malformed_problem(body, json.dumps(body).encode())
    assert problem is not None and problem.param == param and problem.code == "invalid_text"
    assert param in problem.message and "Fix:" in problem.message


@pytest.mark.parametrize(
    "text",
    ["plain", "\U0001f600 paired", "a\x00b NUL", "\\udcff spelled, not a surrogate", "é ü 字"],
)
def test_valid_text_passes(text):
    body = chat({"role": "user", "content": text})
    assert malformed_problem(body, json.dumps(body).encode()) is None


def test_the_raw_body_lets_clean_requests_skip_the_walk():
    body = chat({"role": "user", "content": "\udcff"})
    assert malformed_problem(body, b'{"messages": "no escape here"}') is None  # not walked
    assert malformed_problem(body, json.dumps(body).encode()).code == "invalid_text"
    assert malformed_problem(body).code == "invalid_text"  # no raw body: always walked


@pytest.mark.parametrize(
    ("messages", "param", "code"),
    [
        ([{"role": "user"}], "messages[0].content", "missing_required_parameter"),
        ([{"role": "system"}, USER], "messages[0].content", "missing_required_parameter"),
        ([USER, {"role": "assistant"}], "messages[1].content", "missing_required_parameter"),
        ([{"role": "user", "content": None}], "messages[0].content", "invalid_value"),
        ([{"role": "tool", "content": "42"}], "messages[0].tool_call_id",
         "missing_required_parameter"),
        ([{"content": "x"}], "messages[0].role", "missing_required_parameter"),
        ([{"role": "wizard", "content": "x"}], "messages[0].role", "invalid_value"),
        ([{"role": "user", "content": 5}], "messages[0].content", "invalid_value"),
        ([{"role": "user", "content": [{"text": "a"}]}], "messages[0].content[0]",
         "invalid_value"),
        ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0].text",
         "missing_required_parameter"),
        ([{"role": "user", "content": [{"type": "text", "text": 1}]}],
         "messages[0].content[0].text", "invalid_value"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
         "messages[0].content[0].image_url.url", "missing_required_parameter"),
        ("hello", "messages", "invalid_value"),
        ([], "messages", "invalid_value"),
        (["hi"], "messages[0]", "invalid_value"),
    ],
)  # fmt: skip
def test_messages_missing_what_openai_requires_are_named(messages, param, code):
    problem = messages_problem(messages)
    assert problem is not None, messages
    assert (problem.param, problem.code) == (param, code)
    if code == "missing_required_parameter":
        assert problem.message.startswith(f"Missing required parameter: '{param}'. Fix:")


def test_well_formed_messages_pass():
    ok = [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "json only"}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "other"}]},
        {"role": "assistant", "content": None},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "function", "name": "f", "content": None},
    ]  # fmt: skip
    assert messages_problem(ok) is None


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        ("/v1/chat/completions", chat({"role": "user", "content": "\udcff hi"}),
         "messages[0].content", "invalid_text"),
        ("/v1/chat/completions", chat({"role": "user"}), "messages[0].content",
         "missing_required_parameter"),
        ("/v1/completions", {"model": "tiny", "prompt": "\udcff"}, "prompt", "invalid_text"),
        ("/v1/embeddings", {"model": "tiny", "input": ["a", "\udcff"]}, "input[1]",
         "invalid_text"),
        ("/tokenize", {"model": "tiny", "prompt": "\ud800"}, "prompt", "invalid_text"),
        ("/tokenize", {"model": "tiny", "messages": [{"role": "system"}]},
         "messages[0].content", "missing_required_parameter"),
        ("/v1/score", {"model": "tiny", "text_1": "\udcff", "text_2": "b"}, "text_1",
         "invalid_text"),
    ],
)  # fmt: skip
def test_malformed_requests_are_a_400_before_any_model_is_called(monkeypatch, path, body, param,
                                                                 code):  # fmt: skip
    model = FakeModel()
    client = ingress_client(monkeypatch, {"tiny": model})
    raw = json.dumps(body)  # ensure_ascii: a lone surrogate travels as the escape \udcff
    resp = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, code)
    assert model.calls == []


def test_a_user_message_without_content_no_longer_reaches_the_model(monkeypatch):
    model = FakeModel()
    client = ingress_client(monkeypatch, {"tiny": model})
    assert client.post("/v1/chat/completions", json=chat(USER)).status_code == 200
    assert client.post("/v1/chat/completions", json=chat({"role": "user"})).status_code == 400
    assert len(model.calls) == 1


# -- what the tokenizer does with such text (why the checks exist, and why NUL passes) --------
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(REPO / "tests" / "assets" / "tiny-llama")


def test_the_tokenizer_cannot_encode_a_lone_surrogate_but_encodes_nul(tokenizer):
    with pytest.raises(TypeError):  # not ValueError: vLLM's request path let it through as 500
        tokenizer.encode("\udcff hi")
    ids = tokenizer.encode("a\x00b", add_special_tokens=False)
    assert tokenizer.decode(ids) == "a\x00b"  # NUL is text it round-trips


# -- properties --------------------------------------------------------------------------------
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@st.composite
def with_a_lone_surrogate(draw):
    """A JSON value, and the same value with one string (or key) holding a lone surrogate."""
    value = draw(st.dictionaries(st.text(max_size=6), JSON, min_size=1, max_size=4))
    spots = []

    def walk(v, setter):
        if isinstance(v, str):
            spots.append(setter)
        elif isinstance(v, dict):
            for k in list(v):
                spots.append(lambda s, d=v, k=k: d.__setitem__(k + s, d.pop(k)))
                walk(v[k], lambda s, d=v, k=k: d.__setitem__(k, d[k] + s))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, lambda s, lst=v, i=i: lst.__setitem__(i, lst[i] + s))

    clean = json.loads(json.dumps(value))
    walk(value, None)
    spot = draw(st.sampled_from(spots))
    spot(draw(SURROGATES))
    return clean, value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(with_a_lone_surrogate())
def test_any_lone_surrogate_anywhere_is_found_and_clean_values_pass(pair):
    clean, dirty = pair
    assert unencodable_text_path(clean) is None
    assert malformed_problem(clean, json.dumps(clean).encode()) is None
    where = unencodable_text_path(dirty)
    assert where is not None
    problem = malformed_problem(dirty, json.dumps(dirty).encode())
    assert problem is not None and problem.param == where


@settings(max_examples=200, deadline=None)
@given(st.lists(JSON, max_size=4))
def test_messages_of_any_shape_get_an_answer_never_an_exception(messages):
    problem = messages_problem(messages)
    assert problem is None or (problem.param or "").startswith("messages")
