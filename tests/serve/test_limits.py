"""Expensive requests are answered 400 in OpenAI's error shape, naming the cap, before vLLM
sees them: n and best_of, beam search, structured-output constraints (size, depth, repetition
counts), prompts given as lists of prompts or of token ids, and every text that reaches the
prompt. The shipped defaults are the ones tested, so each test fails on an app without the cap.
No Ray, no vLLM engine: the ingress's FastAPI app through starlette's TestClient."""

import json

import pytest
from starlette.testclient import TestClient

from serve.limits import RequestLimits, engine_limits_env, limit_problem

ENV = "ONPREM_TEST_LIMITS_KEY"
DEFAULTS = RequestLimits()


@pytest.fixture
def client(monkeypatch):
    """The ingress's FastAPI app with the shipped default caps and stand-in routes."""
    from fastapi import Request

    from serve.ingress import ingress_app

    monkeypatch.delenv(ENV, raising=False)
    app = ingress_app(ENV, RequestLimits())

    @app.post("/v1/chat/completions")
    @app.post("/v1/completions")
    @app.post("/v1/embeddings")
    @app.post("/tokenize")
    async def echo(request: Request) -> dict:
        await request.body()
        return {"ok": True}

    return TestClient(app)


def chat(**extra):
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def refused(client, body, param, cap, path="/v1/chat/completions"):
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error",
        "limit_exceeded",
        param,
    )
    assert f"limits.{cap}" in err["message"], err["message"]
    return err["message"]


def accepted(client, body, path="/v1/chat/completions"):
    resp = client.post(path, json=body)
    assert resp.status_code == 200, resp.text


def test_n_and_best_of_are_capped(client):
    accepted(client, chat(n=DEFAULTS.max_n))
    message = refused(client, chat(n=16384, max_tokens=2000), "n", "max_n")
    assert "n is 16384; at most 8" in message
    refused(client, {"model": "m", "prompt": "p", "n": 9}, "n", "max_n", "/v1/completions")
    refused(client, chat(best_of=9), "best_of", "max_n")


def test_beam_search_is_off_by_default_and_its_width_capped_when_on(client, monkeypatch):
    refused(client, chat(use_beam_search=True, n=2), "use_beam_search", "max_beam_width")
    accepted(client, chat(use_beam_search=False, n=2))
    from serve.limits import limit_problem

    on = RequestLimits(max_beam_width=4)
    assert limit_problem(chat(use_beam_search=True, n=4), on) is None
    message, param = limit_problem(chat(use_beam_search=True, n=5), on)
    assert param == "n" and "limits.max_beam_width" in message
    # a beam is capped by its own width, not by max_n
    assert limit_problem(chat(use_beam_search=True, n=12), RequestLimits(max_beam_width=16)) is None


def json_schema(schema):
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


def test_structured_output_size_is_capped_in_bytes(client):
    big = {"type": "string", "enum": [f"value-{i:06d}" for i in range(3000)]}  # ~45 kB
    assert len(json.dumps(big)) > DEFAULTS.max_schema_bytes
    refused(client, chat(response_format=json_schema(big)), "response_format", "max_schema_bytes")
    refused(
        client,
        chat(structured_outputs={"choice": [f"c{i:05d}" for i in range(5000)]}),
        "structured_outputs",
        "max_schema_bytes",
    )
    refused(client, chat(guided_grammar="x" * 40_000), "guided_grammar", "max_schema_bytes")
    accepted(client, chat(response_format=json_schema({"type": "object"})))
    accepted(client, chat(response_format={"type": "text"}))


def test_structured_output_nesting_is_capped(client):
    schema = {"type": "string"}
    for _ in range(20):  # 20 levels of object -> properties -> a: 40 dicts deep
        schema = {"type": "object", "properties": {"a": schema}}
    refused(
        client, chat(response_format=json_schema(schema)), "response_format", "max_schema_depth"
    )


def test_structured_output_repetition_counts_are_capped(client):
    # the example: an array of 50,000 required items, a small schema to send
    many = {"type": "array", "items": {"type": "integer"}, "minItems": 50_000}
    message = refused(
        client, chat(response_format=json_schema(many)), "response_format", "max_schema_repeat"
    )
    assert "50000" in message
    long_string = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 10**6}}}
    refused(
        client,
        chat(response_format=json_schema(long_string)),
        "response_format",
        "max_schema_repeat",
    )
    refused(
        client,
        chat(structured_outputs={"regex": "[a-z]{1,5000}"}),
        "structured_outputs",
        "max_schema_repeat",
    )
    pattern = {"type": "string", "pattern": "^\\d{2000}$"}
    refused(
        client, chat(response_format=json_schema(pattern)), "response_format", "max_schema_repeat"
    )
    refused(client, chat(guided_regex="a{0,99999}"), "guided_regex", "max_schema_repeat")
    ok = {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 20}
    accepted(client, chat(response_format=json_schema(ok)))
    # a description that mentions {5000} is prose, not a repetition
    accepted(client, chat(response_format=json_schema({"type": "string", "description": "{5000}"})))


def test_prompts_given_as_token_ids_are_capped(client):
    cap = DEFAULTS.max_prompt_token_ids
    accepted(client, {"model": "m", "prompt": [1] * cap}, "/v1/completions")
    refused(
        client,
        {"model": "m", "prompt": [1] * (cap + 1)},
        "prompt",
        "max_prompt_token_ids",
        "/v1/completions",
    )
    split = [[1] * (cap // 2), [2] * (cap // 2 + 1)]
    refused(
        client, {"model": "m", "prompt": split}, "prompt", "max_prompt_token_ids", "/v1/completions"
    )
    refused(
        client,
        {"model": "m", "input": [[3] * (cap + 1)]},
        "input",
        "max_prompt_token_ids",
        "/v1/embeddings",
    )


def test_the_number_of_prompts_in_one_request_is_capped(client):
    many = [[1, 2]] * (DEFAULTS.max_prompts + 1)
    refused(client, {"model": "m", "prompt": many}, "prompt", "max_prompts", "/v1/completions")
    refused(
        client, {"model": "m", "prompt": ["p"] * 17}, "prompt", "max_prompts", "/v1/completions"
    )
    accepted(client, {"model": "m", "prompt": ["p"] * DEFAULTS.max_prompts}, "/v1/completions")


OVER = DEFAULTS.max_prompt_chars + 1


def tool(description="d", parameters=None):
    function = {"name": "f", "description": description, "parameters": parameters or {}}
    return {"type": "function", "function": function}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [tool("x" * OVER)]}, "tools"),
        # the parameter names of a tool reach the prompt as much as its descriptions
        ({"tools": [tool(parameters={"p" * OVER: {}})]}, "tools"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "a" * OVER},
                            }
                        ],
                    },
                ]
            },
            "messages",
        ),
        ({"documents": [{"title": "t", "text": "d" * OVER}]}, "documents"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "c" * OVER}]}]},
            "messages",
        ),
        ({"chat_template_kwargs": {"system_hint": "k" * OVER}}, "chat_template_kwargs"),
    ],
    ids=["tool-description", "tool-parameter-names", "tool_calls", "documents", "content-parts",
         "chat_template_kwargs"],
)  # fmt: skip
def test_every_text_that_reaches_the_prompt_counts_toward_the_prompt_cap(client, extra, param):
    message = refused(client, chat(**extra), param, "max_prompt_chars")
    assert f"{param} " in message  # the message says which field holds how much
    # /tokenize renders the chat template too: capped the same way
    refused(client, chat(**extra), param, "max_prompt_chars", "/tokenize")


def test_texts_add_up_across_fields(client):
    half = "h" * (DEFAULTS.max_prompt_chars // 2 + 1)
    tools = [tool(half)]
    accepted(client, chat(tools=tools))
    body = chat(tools=tools, messages=[{"role": "user", "content": half}])
    message = refused(client, body, "tools", "max_prompt_chars")
    assert "messages " in message and "tools " in message


def test_a_deeply_nested_body_is_a_400_not_a_500(client):
    nested = "[" * 5000 + "]" * 5000  # json.loads raises RecursionError, not ValueError
    resp = client.post(
        "/v1/chat/completions", content=nested, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"].startswith("the request body is nested too deeply")


def test_malformed_values_are_left_to_the_request_schema():
    for body in (
        chat(n="many"),
        chat(n=True),
        chat(response_format="json"),
        chat(structured_outputs={"json": {"minItems": "50000"}}),
        {"prompt": [None, {"a": 1}]},
        {"input": 5},
    ):
        assert limit_problem(body, DEFAULTS) is None, body


def test_vllms_own_caps_follow_the_limits(monkeypatch):
    limits = RequestLimits(max_n=4, max_beam_width=6, max_prompts=3, max_stop=2)
    env = engine_limits_env(limits)
    assert env == {
        "VLLM_MAX_N_SEQUENCES": "6",
        "VLLM_MAX_COMPLETION_PROMPTS": "3",
        "VLLM_MAX_STOP_STRINGS": "2",
    }
    # vLLM 0.29 reads VLLM_MAX_N_SEQUENCES when it checks a request's n: the engine refuses too
    from vllm.exceptions import VLLMValidationError
    from vllm.sampling_params import SamplingParams

    monkeypatch.setenv("VLLM_MAX_N_SEQUENCES", env["VLLM_MAX_N_SEQUENCES"])
    SamplingParams(n=6)
    with pytest.raises(VLLMValidationError, match="at most 6"):
        SamplingParams(n=7)
