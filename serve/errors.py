"""What an error answer of the API may hold, decided in one place.

Every error is OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``. A 4xx says
what was wrong with the request (the field, the fix). Anything the code did not raise for the
client is a 500 (or a 503 for a full queue or a lost replica) holding a generic message and the
request id, nothing else; its traceback goes to the replica's log under that request id. A
response never carries ``str()`` of an exception it did not make for the client: a Ray error's
text holds the remote traceback (install paths), the actor id, the process id and the node's IP.

The request id is the one Ray Serve's proxy puts in ``x-request-id`` (and returns in the
response's ``X-Request-ID``); without a proxy (tests) one is made here.

Plain ASGI middlewares and pure functions: tested with starlette's TestClient, no Ray.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("ray.serve")

REQUEST_ID_HEADER = b"x-request-id"


def _encodable(text: str | None) -> str | None:
    """``text`` with any lone surrogate (quoted from a request) written as ``\\udcff``: a
    response body must encode as UTF-8."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(
    message: str, type: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object."""
    message, param = _encodable(message), _encodable(param)
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openai_error(
    status: int,
    message: str,
    type: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A response in OpenAI's error shape."""
    return JSONResponse(error_body(message, type, code, param), status, headers=headers)


def error_event(message: str, code: str) -> str:
    """One server-sent event carrying an OpenAI-shaped server error."""
    return f"data: {json.dumps(error_body(message, 'server_error', code))}\n\n"


def internal_message(request_id: str) -> str:
    return (
        f"the server had an error while processing this request (request id {request_id}). "
        "Retry; if it persists, give the request id to the operator"
    )


# -- request ids -------------------------------------------------------------------------------
def request_id(scope: dict[str, Any]) -> str:
    """This request's id: set by :class:`RequestIdMiddleware`, else the proxy's header."""
    rid = (scope.get("state") or {}).get("request_id")
    if rid:
        return rid
    for name, value in scope.get("headers") or []:
        if name.lower() == REQUEST_ID_HEADER and value:
            return value.decode("latin-1")
    return "unknown"


class RequestIdMiddleware:
    """Puts the request id in ``scope["state"]`` (``request.state.request_id``) and, when no
    proxy set the header, in the request's ``x-request-id``."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            rid = request_id({"headers": scope.get("headers")})
            if rid == "unknown":
                rid = uuid.uuid4().hex
                headers = scope.get("headers") or []
                scope["headers"] = [*headers, (REQUEST_ID_HEADER, rid.encode())]
            scope.setdefault("state", {})["request_id"] = rid
        await self.app(scope, receive, send)


# -- exceptions to answers ---------------------------------------------------------------------
# An absolute path (not a model id such as org/model): a slash after a space, quote or start.
_PATHS = re.compile(r"(?<![\w.\-])(?:[A-Za-z]:)?[\\/](?:[\w.\-]+[\\/])+[\w.\-]+")


def _first_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0][:500] if lines else ""


def _scrubbed(text: str) -> str:
    """The first line of an exception's text, with anything path-like removed: a 4xx from
    the engine quotes the request, never the install."""
    return _PATHS.sub("<path>", _first_line(text))


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception was raised to answer with, if any: HTTP exceptions and
    Ray LLM's ``OpenAIHTTPException`` carry ``status_code``, vLLM's graceful errors
    ``http_status`` (a Ray error that wraps one answers to the same attributes)."""
    for attr in ("status_code", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 400 <= int(value) <= 599:
            return int(value)
    return None


def _named(exc: BaseException, name: str) -> bool:
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _client_message(exc: BaseException, status: int) -> str:
    """The text of an exception raised for the client: the ``detail`` or ``message`` written
    for the response, else the first line of what caused a Ray error (never the Ray error's
    own text, which is the remote traceback)."""
    for attr in ("detail", "message"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value.strip():
            return _first_line(value)
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        return _scrubbed(str(cause))
    if _named(exc, "VLLMClientError"):  # vLLM writes these for the client
        return _scrubbed(str(exc))
    return HTTPStatus(status).phrase


def answer_for(exc: BaseException, rid: str) -> JSONResponse:
    """The response for an exception a route or middleware raised (see the module doc)."""
    from pydantic import ValidationError
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError

    if isinstance(exc, BackPressureError):
        return openai_error(
            503,
            "the server is at capacity (request queue full); retry shortly",
            "server_error",
            "overloaded",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, RayActorError):  # the replica was lost (and lost again on the retry)
        log.error("request %s: model replica lost", rid, exc_info=exc)
        return openai_error(
            503,
            f"the model replica was lost while answering (request id {rid}); retry shortly",
            "server_error",
            "replica_unavailable",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, ValidationError):  # a request object built from the client's body
        return validation_error_response(exc.errors(include_input=False))
    status = _status_of(exc) or (400 if _named(exc, "VLLMClientError") else None)
    headers = getattr(exc, "headers", None) if isinstance(exc, HTTPException) else None
    if status is not None and status < 500:
        code = "model_not_found" if status == 404 else None
        message = _client_message(exc, status)
        return openai_error(status, message, "invalid_request_error", code, headers=headers)
    log.error("request %s failed", rid, exc_info=exc)
    return openai_error(
        status or 500, internal_message(rid), "server_error", "internal_error", headers=headers
    )


def _param(loc: tuple | list) -> str | None:
    """A pydantic error location as OpenAI names a parameter: ``messages[0].content``."""
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or None


def validation_error_response(errors: list[dict[str, Any]]) -> JSONResponse:
    """400 for a request its schema refuses, naming the first field at fault (never echoing
    the value)."""
    first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        message = f"the request body is not valid JSON: {first.get('msg', '')}"
        return openai_error(400, message, "invalid_request_error", "invalid_json")
    param = _param(first.get("loc") or ())
    msg = str(first.get("msg", "")).removeprefix("Value error, ")
    message = f"{param}: {msg}" if param else msg
    return openai_error(400, message, "invalid_request_error", "invalid_parameter", param)


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    return answer_for(exc, request_id(request.scope))


async def validation_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if hasattr(exc, "errors") else []
    return validation_error_response(list(errors))


class ErrorMiddleware:
    """Answers any exception from the layers inside it with :func:`answer_for` (pure ASGI: a
    streamed response passes through untouched). An exception after the response started
    cannot change its status: it is logged and the response ends."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            rid = request_id(scope)
            if started:
                log.error("request %s failed after its response started", rid, exc_info=exc)
                return
            await answer_for(exc, rid)(scope, receive, send)
