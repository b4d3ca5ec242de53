"""The ingress's real routes in a unit test: Ray's ``OpenAiIngress`` through this app's
``OnPremIngress``, registered by Ray's public ``make_fastapi_ingress`` on the app's own FastAPI
app (``serve/ingress.py``), in front of stand-in model deployments. No Ray, no vLLM.

A :class:`FakeModel` stands where a model deployment's handle is: ``<method>.remote(body,
raw_request)`` runs the script given for that method (chunks to yield, an exception to raise
before or after them, or any async-generator function of the body).

Realistic Ray errors for the tests: :func:`remote_error` builds the ``RayTaskError`` a
replica's exception arrives as (its text holds the remote traceback, pid and IP), and
:func:`replica_lost` the ``ActorDiedError`` of a replica whose node went away.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

from starlette.testclient import TestClient

PID, IP = 48213, "10.0.3.17"
ACTOR_ID = "4f1c2a9be07d3e5a8c6b1d2e01000000"
SITE = "/opt/onprem/.venv/lib/python3.11/site-packages"
TRACEBACK = f"""Traceback (most recent call last):
  File "{SITE}/vllm/entrypoints/openai/chat_completion/serving.py", line 212, in create
    prompt = await self._render(request)
  File "{SITE}/transformers/tokenization_utils_tokenizers.py", line 601, in _encode
    encodings = self._tokenizer.encode_batch(batch_text_or_text_pairs)
TypeError: TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]
(ServeReplica:llm:LLMServer:tiny pid={PID}, ip={IP}, actor_id={ACTOR_ID})"""
# What no response may hold: paths, the word Traceback, the pid, the IP, the actor id.
INTERNALS = ("Traceback", "/opt/", "site-packages", ".py", str(PID), IP, ACTOR_ID, "pid=")


def remote_error(cause: Exception) -> Exception:
    """A replica's exception as the ingress receives it from Ray."""
    from ray.exceptions import RayTaskError

    err = RayTaskError(
        "ServeReplica:llm:LLMServer:tiny.handle_request_streaming",
        TRACEBACK,
        cause,
        proctitle="ray::ServeReplica:llm:LLMServer:tiny",
        pid=PID,
        ip=IP,
        actor_id=ACTOR_ID,
    )
    return err.as_instanceof_cause()


def replica_lost() -> Exception:
    """What a call to a replica on a node that went away raises."""
    from ray.exceptions import ActorDiedError

    err = ActorDiedError()
    err.actor_id = ACTOR_ID
    err.error_msg = (
        f"The actor died unexpectedly before finishing this task. class_name: "
        f"ServeReplica:llm:LLMServer:tiny actor_id: {ACTOR_ID} pid: {PID} namespace: serve "
        f"ip: {IP} The actor is dead because its node has died. See /tmp/ray/session_latest/logs"
    )
    return err


def chunks(*items: Any, then: Exception | None = None) -> Callable[[Any], AsyncIterator[Any]]:
    """A script that yields ``items`` and then raises ``then``, if given."""

    async def run(body: Any) -> AsyncIterator[Any]:
        for item in items:
            yield item
        if then is not None:
            raise then

    return run


def raises(exc: Exception) -> Callable[[Any], AsyncIterator[Any]]:
    return chunks(then=exc)


def chat_answer(text: str = "hello") -> Any:
    from ray.serve.llm.openai_api_models import ChatCompletionResponse

    return ChatCompletionResponse(
        id="chatcmpl-1",
        model="tiny",
        choices=[
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    )


def stream_chunk(text: str) -> str:
    return f"data: {json.dumps({'choices': [{'delta': {'content': text}}]})}\n\n"


class FakeModel:
    """A model deployment's handle. ``scripts``: call method -> script (default: a one-word
    chat answer for every method); ``calls`` records what reached the model."""

    def __init__(self, **scripts: Callable[[Any], AsyncIterator[Any]]):
        self.scripts = scripts
        self.calls: list[tuple[str, Any]] = []

    def options(self, **_: Any) -> FakeModel:
        return self

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        script = self.scripts.get(method, chunks(chat_answer()))

        def remote(body: Any, raw_request: Any = None) -> AsyncIterator[Any]:
            self.calls.append((method, body))
            return script(body)

        return SimpleNamespace(remote=remote)


def ingress_client(
    monkeypatch: Any,
    models: dict[str, FakeModel],
    *,
    local_adapters: dict[str, list[str]] | None = None,
    lora_paths: dict[str, str] | None = None,
    env: str = "ONPREM_TEST_INGRESS_KEY",
    limits: Any = None,
    cors_allow_origins: tuple[str, ...] = ("*",),
) -> TestClient:
    """A TestClient on the ingress app with OnPremIngress's routes over ``models``, as
    ``serve.app.build_app`` puts them together. Exceptions that escape every layer fail the
    test (the client re-raises them)."""
    from ray import serve
    from ray.serve.exceptions import BackPressureError
    from ray.serve.llm import LLMConfig
    from ray.serve.llm.ingress import make_fastapi_ingress
    from starlette.responses import PlainTextResponse

    from serve import ray_internals
    from serve.guard import ModelCatalog
    from serve.ingress import OnPremIngress, ingress_app

    cards = {
        m: ray_internals.model_card(
            LLMConfig(
                model_loading_config={"model_id": m, "model_source": f"/models/{m}"},
                placement_group_config={"bundles": [{"CPU": 1}]},
            )
        )
        for m in models
    }
    catalog = ModelCatalog.of(models, local_adapters, lora_paths or {})
    app = ingress_app(env, limits, models=catalog, cors_allow_origins=cors_allow_origins)
    make_fastapi_ingress(OnPremIngress, app=app)  # adds the routes to `app`
    # What Serve's replica does when it starts an ASGI app (ray/serve/_private/replica.py): its
    # own plain-text 503 for a full queue, registered over any handler of ours.
    app.add_exception_handler(
        BackPressureError, lambda _req, exc: PlainTextResponse(exc.message, status_code=503)
    )
    ingress = OnPremIngress(
        models, cards, lora_paths=lora_paths, local_adapters=local_adapters, api_key_env=env
    )
    # Serve hands each route its deployment instance through the replica context.
    monkeypatch.setattr(
        serve, "get_replica_context", lambda: SimpleNamespace(servable_object=ingress)
    )
    return TestClient(app)
