"""What the Serve app refuses before any request reaches vLLM, and when it refuses to start.

- :func:`anonymous_problem`: an API that listens beyond loopback without a key is an error at
  deploy, unless the app's args say ``allow_anonymous: true`` (a gateway in front
  authenticates).
- :class:`APIKeyMiddleware`: ``Authorization: Bearer <key>`` on every route but ``/health``
  (401 without it). It sits inside the CORS layer, so a browser's preflight (``OPTIONS``, which
  never carries the key) is answered by the CORS settings and the real request needs the key.
- :class:`RequestChecksMiddleware`: the body size cap (413); a body nested past the parser's
  limit (400); adapter names that could leave the adapters' folder (400) and models the app
  does not serve (404); malformed text and messages (``serve/malformed.py``, 400); the caps of
  ``serve/limits.py`` (400). All in OpenAI's error shape, naming the field.

Pure functions and plain ASGI middlewares: tested with starlette's TestClient, no Ray, no vLLM.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from serve.errors import openai_error
from serve.limits import RequestLimits, limit_problem
from serve.malformed import Refusal, malformed_problem

log = logging.getLogger("ray.serve")

HEALTH_PATHS = ("/health",)


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
    from serve.ray_internals import serve_controller_http_host

    try:
        return serve_controller_http_host()
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


@dataclass(frozen=True)
class ModelCatalog:
    """The models an app serves: base model ids, local adapters (``<base>:<name>``), and the
    bases whose adapters load from cloud storage (any adapter name may exist there)."""

    bases: frozenset[str]
    adapters: frozenset[str] = frozenset()
    cloud: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        bases: Iterable[str],
        local_adapters: dict[str, list[str]] | None = None,
        cloud: Iterable[str] = (),
    ) -> ModelCatalog:
        """From base ids, ``{base: [adapter names]}`` and the bases with a cloud LoRA path."""
        local = (f"{b}:{n}" for b, names in (local_adapters or {}).items() for n in names)
        return cls(frozenset(bases), frozenset(local), frozenset(cloud))

    def missing(self, model: Any) -> str | None:
        """Why ``model`` names nothing this app serves, or None (also for a request that
        names no model, or not as a string: the request schema answers that)."""
        if not isinstance(model, str):
            return None
        base = model.split(":", 1)[0]
        if model in self.bases or model in self.adapters or (base in self.cloud and base != model):
            return None
        available = ", ".join(sorted(self.bases | self.adapters))
        return f"model {model!r} does not exist; available: {available}"


# -- the middlewares ---------------------------------------------------------------------------
class APIKeyMiddleware:
    """Every HTTP route but ``/health``, and every websocket, needs ``Authorization: Bearer
    <key>`` when ``env`` holds a key (compared in constant time); a missing or wrong key gets
    OpenAI's 401. With ``required`` (the app was built needing a key), an empty ``env`` at
    request time is a 401 too: the check fails closed, never open."""

    def __init__(self, app: Any, env: str = "ONPREM_API_KEY", required: bool = False):
        self.app, self.env, self.required = app, env, required

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        key = os.environ.get(self.env) or ""
        checked = scope["type"] in ("http", "websocket") and scope.get("path") not in HEALTH_PATHS
        if checked and (key or self.required):
            sent = dict(scope.get("headers") or []).get(b"authorization", b"")
            token = sent[7:].strip() if sent[:7].lower() == b"bearer " else b""
            if not key or not token or not hmac.compare_digest(token, key.encode()):
                await self._refuse(scope, receive, send, bool(key))
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: dict, receive: Any, send: Any, has_key: bool) -> None:
        if not has_key:
            log.error("%s is empty but the app was built to require it: refusing", self.env)
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        resp = openai_error(
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            "authentication_error",
            "invalid_api_key",
        )
        await resp(scope, receive, send)  # for a websocket: Starlette's denial response


NESTED = Refusal(
    "the request body is nested too deeply. Fix: send a flatter request", None, "invalid_json"
)


class RequestChecksMiddleware:
    """Reads a POST body up to ``limits.max_body_bytes`` (413 beyond it), answers what
    :meth:`refusal` finds (400/404), then hands the body on unchanged. Every POST body,
    whatever its path: the checks read only OpenAI request fields, and a route added later (or
    under another prefix) is covered without a list to update."""

    def __init__(
        self, app: Any, limits: RequestLimits | None = None, models: ModelCatalog | None = None
    ):
        self.app, self.limits, self.models = app, limits or RequestLimits(), models

    def refusal(self, body: bytes, content_type: str = "") -> tuple[int, Refusal] | None:
        """(status, refusal) for a body, or None to pass it on (pure). A body sent as JSON (or
        with no content type, which FastAPI reads as JSON) must parse; another (a form
        upload) passes to its route."""
        try:
            parsed = json.loads(body)
        except RecursionError:
            return 400, NESTED
        except ValueError as exc:
            if content_type and "json" not in content_type.lower():
                return None
            message = f"the request body is not valid JSON: {exc}. Fix: send a JSON object"
            return 400, Refusal(message, None, "invalid_json")
        if not isinstance(parsed, dict):
            return None  # the request schema answers that
        try:
            return self._refusal(parsed, body)
        except RecursionError:  # nested within the parser's limit, past the checks' own
            return 400, NESTED

    def _refusal(self, parsed: dict[str, Any], body: bytes) -> tuple[int, Refusal] | None:
        model = parsed.get("model")
        name = adapter_name_problem(model)
        if name:
            return 400, Refusal(name, "model", "invalid_model_name")
        missing = self.models.missing(model) if self.models else None
        if missing:
            return 404, Refusal(missing, "model", "model_not_found")
        malformed = malformed_problem(parsed, body)
        if malformed:
            return 400, malformed
        capped = limit_problem(parsed, self.limits)
        if capped:
            return 400, Refusal(capped[0], capped[1], "limit_exceeded")
        return None

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
        refused = self.refusal(body, headers.get(b"content-type", b"").decode("latin-1"))
        if refused:
            status, (message, param, code) = refused
            await openai_error(status, message, "invalid_request_error", code, param)(
                scope, receive, send
            )
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
