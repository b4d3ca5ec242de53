"""Hypothesis strategies that break a request body the ways clients do, for the fuzz tests (the
unit one in tests/serve/test_ingress.py, the integration one in tests/serve/test_fuzz.py):

- ``surrogate``: one string of the body, or one key, gets a lone UTF-16 surrogate (valid JSON
  as an escape, ``"\\udcff"``; no tokenizer can encode it);
- ``missing``: one field is left out, anywhere in the body (a message's ``content`` among the
  candidates whenever the body has messages);
- ``as-is``: the body as generated.

:func:`encode` writes a body as JSON with lone surrogates escaped (``json.dumps``' default);
HTTP clients that encode JSON as UTF-8 themselves cannot send them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

KINDS = ("as-is", "surrogate", "missing")
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)

Path = tuple[Any, ...]


def _spots(value: Any, path: Path = ()) -> tuple[list[Path], list[Path]]:
    """(paths of strings, paths of dict keys) in a JSON value; a key's path ends at the key."""
    strings: list[Path] = []
    keys: list[Path] = []
    if isinstance(value, str):
        strings.append(path)
    elif isinstance(value, dict):
        for k, v in value.items():
            keys.append((*path, k))
            s, kk = _spots(v, (*path, k))
            strings += s
            keys += kk
    elif isinstance(value, list):
        for i, v in enumerate(value):
            s, kk = _spots(v, (*path, i))
            strings += s
            keys += kk
    return strings, keys


def _parent(body: Any, path: Path) -> Any:
    for step in path[:-1]:
        body = body[step]
    return body


@st.composite
def broken(draw: st.DrawFn, body: Any, kinds: tuple[str, ...] = KINDS) -> tuple[str, Any]:
    """(kind, body) with ``body`` (a JSON object) broken one of the ways above."""
    kind = draw(st.sampled_from(kinds))
    out = copy.deepcopy(body)
    if kind == "as-is" or not isinstance(out, dict):
        return "as-is", out
    strings, keys = _spots(out)
    if kind == "surrogate":
        char = draw(SURROGATES)
        if not strings and not keys:
            out["user"] = char  # an OpenAI field every completion request may carry
            return kind, out
        path = draw(st.sampled_from(strings + keys))
        parent, last = _parent(out, path), path[-1]
        if path in strings and draw(st.booleans()):
            parent[last] = parent[last] + char
        elif isinstance(last, str):  # a key (or a string's own key): rename it
            parent[last + char] = parent.pop(last)
        else:
            parent[last] = str(parent[last]) + char
        return kind, out
    messages = out.get("messages")
    contents = [
        ("messages", i, "content")
        for i, m in enumerate(messages if isinstance(messages, list) else [])
        if isinstance(m, dict) and "content" in m
    ]
    if not keys:
        return "as-is", out
    path = draw(st.sampled_from(contents or keys)) if draw(st.booleans()) else None
    path = path or draw(st.sampled_from(keys))
    _parent(out, path).pop(path[-1])
    return kind, out


def encode(body: Any) -> bytes:
    """JSON bytes with every non-ASCII character escaped (lone surrogates included)."""
    return json.dumps(body).encode()
