"""The OpenAI chat-completions wire format: request schema, responses, stream chunks and
errors in OpenAI's shape (pure functions; no Ray)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cluster.chat import ROLES


class APIError(Exception):
    """An error the API answers in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # [{"type": "text", "text": ...}, ...]
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What ``POST /v1/chat/completions`` accepts. Unknown fields are ignored, like OpenAI."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        return [s for s in stops if s]


def check_request(req: ChatCompletionRequest, max_tokens_limit: int) -> None:
    """Rules beyond the schema: roles, empty messages, n, max_tokens range."""
    if not req.messages:
        raise APIError(400, "messages must not be empty", param="messages")
    for i, m in enumerate(req.messages):
        if m.role not in ROLES:
            raise APIError(
                400,
                f"messages[{i}].role {m.role!r} is not supported; use one of {', '.join(ROLES)}",
                param=f"messages[{i}].role",
            )
        if not m.text().strip():
            raise APIError(400, f"messages[{i}].content is empty", param=f"messages[{i}].content")
    if req.n != 1:
        raise APIError(400, "only n=1 is supported", param="n")
    wanted = req.max_completion_tokens or req.max_tokens
    if wanted is not None and wanted > max_tokens_limit:
        raise APIError(
            400,
            f"max_tokens={wanted} is more than this server allows ({max_tokens_limit})",
            param="max_tokens",
        )


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion(
    id: str, model: str, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chunk(
    id: str,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
    choices: bool = True,
) -> str:
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        if choices
        else [],
    }
    if usage_ is not None:
        body["usage"] = usage_
    return f"data: {json.dumps(body)}\n\n"


DONE = "data: [DONE]\n\n"

FinishReason = Literal["stop", "length"]


def finish_reason(engine_reason: str | None) -> str:
    return "length" if engine_reason == "length" else "stop"


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every ``$ref`` replaced by its definition, so it can be
    embedded anywhere in an OpenAPI document."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
