"""The request bodies of the ingress's chat and completions routes: vLLM's own request schemas
(through ``ray.serve.llm.openai_api_models``), made to refuse what they would otherwise let
through to a 500. Found by the fuzz tests (tests/serve/test_ingress.py):

- vLLM's ``mode="before"`` validators read fields without checking their type
  (``"structured_outputs": false`` raised ``AttributeError``) or raise vLLM's own
  ``VLLMValidationError``, neither of which pydantic turns into a validation error;
- a message's ``content`` given as a list of parts is kept as a lazy iterator and only checked
  when Ray copies the request for the replica, after validation, where a bad part was a 500.

Here any error raised while a body is validated is the client's (a 400 naming what was wrong),
and content parts are checked while the body is validated.
"""

# FastAPI reads these classes at runtime: no `from __future__ import annotations` here.

from typing import Any

from pydantic import ValidationError, ValidatorFunctionWrapHandler, model_validator
from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest


def _validated(data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(data)
    except (ValueError, AssertionError):  # pydantic's own errors, and validators' ValueErrors
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(c.__name__ == "VLLMClientError" for c in type(exc).__mro__):
            raise ValueError(first[:300]) from None  # vLLM's message, written for the client
        raise ValueError(f"the request does not fit the schema: {first[:300]}") from None


def _materialized(request: Any) -> Any:
    """Each message's content parts and tool calls as lists, checked now."""
    for i, message in enumerate(request.messages):
        if not isinstance(message, dict):
            continue
        for field in ("content", "tool_calls"):
            value = message.get(field)
            if value is None or isinstance(value, (str, list)):
                continue
            try:
                message[field] = list(value)
            except ValidationError as exc:
                error = exc.errors(include_input=False)[0]
                index, *inside = error["loc"] or ("?",)
                detail = ".".join(str(p) for p in inside)
                raise ValueError(
                    f"messages[{i}].{field}[{index}] fits none of the accepted shapes"
                    + (f" ({detail}: {error['msg']})" if detail else f": {error['msg']}")
                ) from None
    return request


class CheckedChatCompletionRequest(ChatCompletionRequest):
    """vLLM's chat request (see the module doc)."""

    @model_validator(mode="wrap")
    @classmethod
    def _client_errors(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _materialized(_validated(data, handler))


class CheckedCompletionRequest(CompletionRequest):
    """vLLM's completions request (see the module doc)."""

    @model_validator(mode="wrap")
    @classmethod
    def _client_errors(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _validated(data, handler)
