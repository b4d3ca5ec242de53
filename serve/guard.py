"""What the Serve app refuses before any request reaches vLLM, and when it refuses to start.

- :func:`anonymous_problem`: an API that listens beyond loopback without a key is an error at
  deploy, unless the app's args say ``allow_anonymous: true`` (a gateway in front
  authenticates).
- :class:`RequestLimitsMiddleware`: the body size cap (413), then the caps of
  ``serve/limits.py`` (400), answered in OpenAI's error shape
  (``{"error": {"message", "type", "param", "code"}}``).

Pure functions and a plain ASGI middleware: tested with starlette's TestClient, no Ray, no vLLM.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from starlette.responses import JSONResponse

from serve.limits import RequestLimits, limit_problem


def openai_error(
    status: int, message: str, type: str, code: str | None, param: str | None = None
) -> JSONResponse:
    """A response in the OpenAI error shape."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


# -- fail closed -------------------------------------------------------------------------------
def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for 0.0.0.0, other addresses and an
    unknown (None) host, so an unknown bind fails closed."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def anonymous_problem(
    host: str | None, key: str | None, allow_anonymous: bool, env: str
) -> str | None:
    """Why the app must not start without an API key (None when it may)."""
    if key or allow_anonymous or is_loopback(host):
        return None
    return (
        f"http_options.host is {host!r}, not a loopback address, and the API key variable "
        f"{env} is empty: the API would answer anyone who can reach it. Fix: set {env} "
        "(`python -m cluster up` and the on-prem setup write one to <root>/.cluster/api_key and "
        "give it to the cluster; on Kubernetes the Secret onprem-llm-api), or bind "
        "http_options.host to 127.0.0.1, or set `allow_anonymous: true` in the app's args if a "
        "gateway in front authenticates every request"
    )


def key_required(host: str | None, key: str | None, allow_anonymous: bool) -> bool:
    """Whether every request must carry the key, even if the variable is empty when it comes:
    a key was set when the app was built, or the bind needs one. An ingress replica whose
    variable is empty then refuses every request (401) instead of answering anyone."""
    return bool(key) or not (allow_anonymous or is_loopback(host))


def serve_http_host() -> str | None:
    """The host Serve's HTTP proxies bind, from the running Serve controller (None when no
    controller can be reached: treated as not loopback)."""
    try:
        from ray.serve.context import _get_global_client

        client = _get_global_client(raise_if_no_controller_running=False)
        return client.http_config.host if client is not None else None
    except Exception:  # any failure here means "unknown", which fails closed
        return None


# -- adapter names -----------------------------------------------------------------------------
ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def adapter_name_problem(model: Any) -> str | None:
    """Why the adapter part of ``<base>:<adapter>`` is refused, or None (pure). Ray's LoRA
    loading joins ``f"{dynamic_lora_loading_path}/{adapter}"`` as given, so a name holding
    ``/`` or ``..`` would reach outside the adapters' folder or bucket prefix."""
    if not isinstance(model, str) or ":" not in model:
        return None
    name = model.split(":", 1)[1]
    if ADAPTER_NAME.fullmatch(name) and ".." not in name:
        return None
    return (
        f"adapter name {name!r} (in model {model!r}) is not accepted: 1-64 letters, digits, "
        "'.', '_' or '-', starting with a letter or digit, without '..'. Fix: e.g. "
        "smollm2-135m-instruct:support"
    )


# -- the middleware --------------------------------------------------------------------------
class RequestLimitsMiddleware:
    """Reads a POST body up to ``limits.max_body_bytes`` (413 beyond it), checks the caps of
    completion requests (400), then hands the body on unchanged."""

    def __init__(self, app: Any, limits: RequestLimits | None = None):
        self.app, self.limits = app, limits or RequestLimits()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        cap = self.limits.max_body_bytes
        too_big = openai_error(
            413,
            f"the request body is larger than {cap} bytes. Fix: send a smaller request",
            "invalid_request_error",
            "request_too_large",
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode() or "0"
        if declared.isdigit() and int(declared) > cap:
            await too_big(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await too_big(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        # Every POST body, whatever its path: the caps read only OpenAI request fields, and a
        # route added later (or under another prefix) is covered without a list to update.
        try:
            parsed = json.loads(body)
            problem = limit_problem(parsed, self.limits)
        except RecursionError:
            parsed, problem = None, ("the request body is nested too deeply", None)
        except ValueError:
            parsed, problem = None, None  # not JSON: the route's own validation answers it
        code = "limit_exceeded"
        if not problem and isinstance(parsed, dict):
            name = adapter_name_problem(parsed.get("model"))
            problem, code = ((name, "model"), "invalid_model_name") if name else (None, code)
        if problem:
            message, param = problem
            resp = openai_error(400, message, "invalid_request_error", code, param)
            await resp(scope, receive, send)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
