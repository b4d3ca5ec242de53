"""Request bodies the engine would fail on, found before it sees them: pure functions of the
parsed JSON body. ``serve/guard.py`` answers each with 400 in OpenAI's error shape, naming the
field (``param``) and the fix.

- **Text that is not Unicode.** JSON can spell a lone UTF-16 surrogate (``"\\udcff hi"`` is valid
  JSON); Python keeps it in a ``str`` and no tokenizer can encode it (Hugging Face's tokenizers
  raise ``TypeError``, which vLLM's request path does not catch: it was a 500 carrying the
  replica's traceback). Refused wherever it is in the body, keys included.
- **NUL characters** are text the byte-level tokenizers the platform serves encode (one token;
  ``tests/serve/test_malformed.py`` checks it on the test tokenizer), so they pass.
- **Chat messages** (``messages`` of chat, tokenize and embeddings requests): a non-empty list of
  objects with a known role; ``content`` present where OpenAI requires it (system, developer,
  user, tool and function messages; assistant messages unless they carry ``tool_calls`` or
  ``function_call``) and not null for system, developer, user and tool messages; a tool
  message's ``tool_call_id``; content a string or a list of parts, each part an object with a
  string ``type`` and that type's own field (a text part's ``text``...). vLLM's schema takes any
  mapping as a message; a user message without content was answered 200 (an empty turn).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple


class Refusal(NamedTuple):
    """Why a request is refused: the message (what, where, the fix), the request field, and
    OpenAI's error code."""

    message: str
    param: str | None
    code: str


CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Roles whose content must be there and must not be null (OpenAI's chat API).
CONTENT_NOT_NULL = ("system", "developer", "user", "tool")
# A content part's type -> the field it must carry (and, for objects, the string inside it).
PART_FIELDS: dict[str, tuple[str, str | None]] = {
    "text": ("text", None),
    "image_url": ("image_url", "url"),
    "input_audio": ("input_audio", "data"),
    "refusal": ("refusal", None),
}
# A JSON escape that may spell a lone surrogate: bodies without one skip the walk.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def unencodable_text_path(body: Any) -> str | None:
    """Where the first string (or key) that is not valid Unicode sits in a JSON value, as
    ``messages[0].content``; None when all text encodes as UTF-8. Iterative: a body nested
    as deep as the JSON parser allows cannot overflow the stack here."""
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return path or "body"
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                stack.append((item, _join(path, str(key))))
                stack.append((key, _join(path, str(key))))
        elif isinstance(value, list):
            stack.extend((item, _join(path, i)) for i, item in reversed(list(enumerate(value))))
    return None


def text_problem(body: Any, raw: bytes | None = None) -> Refusal | None:
    """A lone surrogate anywhere in the body. ``raw`` (the body's bytes) lets a body with no
    ``\\uD800``-``\\uDFFF`` escape skip the walk."""
    if raw is not None and not _SURROGATE_ESCAPE.search(raw):
        return None
    where = unencodable_text_path(body)
    if where is None:
        return None
    return Refusal(
        f"{where} holds text that is not valid Unicode (a lone UTF-16 surrogate such as "
        "\\udcff), which the tokenizer cannot encode. Fix: send UTF-8 text; a character "
        "outside the Basic Multilingual Plane is a surrogate pair (\\ud83d\\ude00), never half",
        where,
        "invalid_text",
    )


def _missing(field: str, fix: str) -> Refusal:
    return Refusal(
        f"Missing required parameter: '{field}'. Fix: {fix}", field, "missing_required_parameter"
    )


def _invalid(field: str, what: str) -> Refusal:
    return Refusal(f"{field} {what}", field, "invalid_value")


def _part_problem(part: Any, where: str) -> Refusal | None:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        return _invalid(where, "must be an object with a string 'type'")
    field, inner = PART_FIELDS.get(part["type"], (None, None))
    if field is None:
        return None  # a type this check does not know: the engine's schema decides
    value = part.get(field)
    if inner is None:
        if field not in part:
            return _missing(f"{where}.{field}", f"a {part['type']} part carries '{field}'")
        if not isinstance(value, str):
            return _invalid(f"{where}.{field}", "must be a string")
        return None
    if not isinstance(value, dict) or not isinstance(value.get(inner), str):
        return _missing(
            f"{where}.{field}.{inner}",
            f"a {part['type']} part carries {{'{field}': {{'{inner}': '...'}}}}",
        )
    return None


def _message_problem(msg: Any, where: str) -> Refusal | None:
    if not isinstance(msg, dict):
        return _invalid(where, "must be an object with role and content")
    role = msg.get("role")
    if role not in CHAT_ROLES:
        if "role" not in msg:
            return _missing(f"{where}.role", f"one of {', '.join(CHAT_ROLES)}")
        return _invalid(f"{where}.role", f"{role!r} is not one of {', '.join(CHAT_ROLES)}")
    content = msg.get("content")
    if "content" not in msg and not (
        role == "assistant" and (msg.get("tool_calls") or msg.get("function_call"))
    ):
        fix = f"a {role} message needs content (a string or a list of parts)"
        if role == "assistant":
            fix += "; an assistant message may leave it out only with tool_calls"
        return _missing(f"{where}.content", fix)
    if content is None and "content" in msg and role in CONTENT_NOT_NULL:
        return _invalid(f"{where}.content", f"must not be null in a {role} message")
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        return _missing(f"{where}.tool_call_id", "the id of the tool call this message answers")
    if isinstance(content, list):
        for j, part in enumerate(content):
            problem = _part_problem(part, f"{where}.content[{j}]")
            if problem:
                return problem
    elif content is not None and not isinstance(content, str):
        return _invalid(f"{where}.content", "must be a string, a list of parts or null")
    return None


def messages_problem(messages: Any) -> Refusal | None:
    """What makes a request's ``messages`` unusable, or None."""
    if not isinstance(messages, list) or not messages:
        return _invalid("messages", "must be a non-empty list of {role, content} objects")
    for i, msg in enumerate(messages):
        problem = _message_problem(msg, f"messages[{i}]")
        if problem:
            return problem
    return None


def malformed_problem(body: Any, raw: bytes | None = None) -> Refusal | None:
    """The first problem of a parsed request body: text that is not Unicode, then chat
    messages (when the body has ``messages``)."""
    problem = text_problem(body, raw)
    if problem or not isinstance(body, dict) or "messages" not in body:
        return problem
    return messages_problem(body["messages"])
