"""Caps on one request to the OpenAI API, checked before the request reaches vLLM: pure
functions of the parsed JSON body and :class:`RequestLimits` (the ``limits`` of the app's args
in ``serve/config.yaml``). ``serve/guard.py``'s middleware answers a broken cap with 400 in
OpenAI's error shape; each message names the cap (``limits.max_n``) and the fix.

What is capped, and why: the number of sequences the engine runs for one request (``n``,
``best_of``, the beam width of ``use_beam_search``); structured-output constraints, from which
the engine compiles a grammar with no time limit (their size in bytes, nesting depth and the
largest repetition count: a JSON schema's ``minItems``/``maxLength``..., a regex's ``{m,n}``);
prompts given as lists (how many, and how many token ids); every text that reaches the prompt
(messages with their tool calls, tools, documents, chat_template_kwargs, prompt, suffix, input);
stop strings. :func:`engine_limits_env` sets vLLM's own caps, where it has one, to the same
values.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestLimits(BaseModel):
    """Caps on one request, checked before the request reaches the engine. Each over-limit
    request is answered 400 naming its cap (``limits.<cap>``)."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=1_000_000, gt=0, description="request body size")
    max_messages: int = Field(default=256, gt=0, description="messages in one chat request")
    max_prompt_chars: int = Field(
        default=200_000,
        gt=0,
        description="characters of every text that reaches the prompt: messages (content, "
        "tool_calls, names), tools, documents, chat_template_kwargs, prompt, suffix, input",
    )
    max_prompts: int = Field(
        default=16, gt=0, description="prompts in one completions/embeddings request (a list)"
    )
    max_prompt_token_ids: int = Field(
        default=50_000, gt=0, description="token ids of prompts given as token-id lists"
    )
    max_n: int = Field(default=8, gt=0, description="choices per request (n, best_of)")
    max_beam_width: int = Field(
        default=0,
        ge=0,
        description="beam width (n of a use_beam_search request); 0 refuses beam search",
    )
    max_schema_bytes: int = Field(
        default=32_768,
        gt=0,
        description="bytes of a structured-output constraint (response_format, "
        "structured_outputs, guided_*: JSON schema, regex, grammar, choices)",
    )
    max_schema_depth: int = Field(
        default=32, gt=0, description="nesting depth of a structured-output constraint"
    )
    max_schema_repeat: int = Field(
        default=1_000,
        gt=0,
        description="repetition counts a grammar must unroll: minItems/maxItems/minLength/... "
        "of a JSON schema, {m,n} of a regex or grammar",
    )
    max_stop: int = Field(default=4, ge=0, description="stop strings (OpenAI allows 4)")
    max_stop_chars: int = Field(default=256, gt=0, description="characters of one stop string")


Problem = tuple[str, str | None]  # (message, the request field it is about)

# Request fields whose text the chat template or the tokenizer turns into prompt tokens.
PROMPT_TEXT_FIELDS = (
    "messages",
    "tools",
    "functions",
    "documents",
    "chat_template_kwargs",
    "prompt",
    "suffix",
    "input",
)
# Structured-output constraints: vLLM 0.29 reads response_format and structured_outputs; the
# guided_* fields of older versions are ignored by it, and capped here all the same.
CONSTRAINT_FIELDS = (
    "response_format",
    "structured_outputs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_whitespace_pattern",
    "guided_decoding",
)
_SCHEMA_COUNTS = (
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)
_PATTERN_KEYS = ("pattern", "regex", "grammar", "whitespace_pattern", "guided_regex")
_REPEATS = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}|~\s*(\d+)(?:\s*\.\.\s*(\d+))?")


def _text_chars(content: Any) -> int:
    """Characters of text in a message's content (a string, or a list of parts); anything of
    another shape counts 0 here and is answered by the request schema."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(p["text"])
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return 0


def _chars(value: Any) -> int:
    """Characters of every string in a JSON value, keys included (a tool's parameter names
    reach the prompt as much as its descriptions)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(str(k)) + _chars(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    return 0


def _prompt_chars(field: str, value: Any) -> int:
    if field != "messages":
        return _chars(value)
    if not isinstance(value, list):
        return 0
    return sum(
        _text_chars(m.get("content"))
        + sum(_chars(v) for k, v in m.items() if k not in ("role", "content"))
        for m in value
        if isinstance(m, dict)
    )


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _largest_repeat(value: Any, key: str = "") -> int:
    """The largest repetition count a grammar compiled from ``value`` has to unroll."""
    if isinstance(value, dict):
        own = [v for k, v in value.items() if k in _SCHEMA_COUNTS and isinstance(v, int)]
        return max([*own, *(_largest_repeat(v, str(k)) for k, v in value.items())], default=0)
    if isinstance(value, list):
        return max((_largest_repeat(v, key) for v in value), default=0)
    if isinstance(value, str) and key in _PATTERN_KEYS:
        counts = [int(n) for m in _REPEATS.finditer(value) for n in m.groups() if n]
        return max(counts, default=0)
    return 0


def _cap(what: str, value: int, cap: int, name: str, fix: str) -> str:
    return f"{what} is {value}; at most {cap} is accepted (limits.{name}). Fix: {fix}"


def _count_problem(body: dict[str, Any], limits: RequestLimits) -> Problem | None:
    """n, best_of and beam search: each choice or beam is a sequence the engine runs."""
    beam = body.get("use_beam_search") is True
    if beam and limits.max_beam_width == 0:
        return (
            "beam search is turned off here (limits.max_beam_width is 0). Fix: leave out "
            "use_beam_search",
            "use_beam_search",
        )
    for field in ("n", "best_of"):
        n = body.get(field)
        if not isinstance(n, int) or isinstance(n, bool):
            continue  # the request schema answers that
        if beam and field == "n":  # vLLM's beam width is the request's n
            if n > limits.max_beam_width:
                fix = "ask for a narrower beam"
                return _cap(
                    "n (the beam width)", n, limits.max_beam_width, "max_beam_width", fix
                ), "n"
        elif n > limits.max_n:
            return _cap(field, n, limits.max_n, "max_n", "ask for fewer choices"), field
    return None


def _constraint_problem(body: dict[str, Any], limits: RequestLimits) -> Problem | None:
    """Structured outputs: a grammar is compiled from each constraint, with no time limit."""
    for field in CONSTRAINT_FIELDS:
        value = body.get(field)
        if value is None or (field == "response_format" and _plain_text(value)):
            continue
        size = len(value.encode() if isinstance(value, str) else json.dumps(value).encode())
        if size > limits.max_schema_bytes:
            return _cap(
                f"{field} (bytes)",
                size,
                limits.max_schema_bytes,
                "max_schema_bytes",
                "send a smaller schema, regex or grammar",
            ), field
        depth = _depth(value)
        if depth > limits.max_schema_depth:
            return _cap(
                f"{field} (nesting depth)",
                depth,
                limits.max_schema_depth,
                "max_schema_depth",
                "flatten the schema",
            ), field
        repeat = _largest_repeat(value, field)
        if repeat > limits.max_schema_repeat:
            return _cap(
                f"{field} (largest repetition count)",
                repeat,
                limits.max_schema_repeat,
                "max_schema_repeat",
                "ask for fewer items or characters",
            ), field
    return None


def _plain_text(response_format: Any) -> bool:
    return isinstance(response_format, dict) and response_format.get("type") == "text"


def _prompt_lists_problem(body: dict[str, Any], limits: RequestLimits) -> Problem | None:
    """Completions and embeddings take a prompt, a list of prompts, or prompts as lists of
    token ids: the count of prompts and of token ids is capped (text is capped as text)."""
    for field in ("prompt", "input", "prompt_embeds"):
        value = body.get(field)
        if not isinstance(value, list) or not value:
            continue
        if all(isinstance(t, int) for t in value):
            prompts, ids = 1, len(value)
        else:
            prompts = len(value)
            ids = sum(len(p) for p in value if isinstance(p, list))
        if prompts > limits.max_prompts:
            return _cap(
                f"{field} (prompts)",
                prompts,
                limits.max_prompts,
                "max_prompts",
                "send the prompts in several requests",
            ), field
        if ids > limits.max_prompt_token_ids:
            return _cap(
                f"{field} (token ids)",
                ids,
                limits.max_prompt_token_ids,
                "max_prompt_token_ids",
                "shorten the prompt",
            ), field
    return None


def _text_problem(body: dict[str, Any], limits: RequestLimits) -> Problem | None:
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        return (
            f"messages has {len(messages)} entries; at most {limits.max_messages} are "
            "accepted (limits.max_messages). Fix: send fewer, or summarise earlier turns",
            "messages",
        )
    chars = {f: _prompt_chars(f, body[f]) for f in PROMPT_TEXT_FIELDS if body.get(f) is not None}
    total = sum(chars.values())
    if total > limits.max_prompt_chars:
        parts = ", ".join(f"{f} {n}" for f, n in chars.items() if n)
        return (
            f"the prompt's text holds {total} characters ({parts}); at most "
            f"{limits.max_prompt_chars} are accepted (limits.max_prompt_chars). Fix: shorten "
            "the conversation, tools or documents",
            max(chars, key=chars.__getitem__),
        )
    return None


def _stop_problem(body: dict[str, Any], limits: RequestLimits) -> Problem | None:
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if len(stops) > limits.max_stop:
        return (
            f"stop has {len(stops)} strings; at most {limits.max_stop} are accepted "
            "(limits.max_stop)",
            "stop",
        )
    for s in stops:
        if isinstance(s, str) and len(s) > limits.max_stop_chars:
            return (
                f"a stop string has {len(s)} characters; at most {limits.max_stop_chars} "
                "(limits.max_stop_chars)",
                "stop",
            )
    return None


CHECKS = (_count_problem, _constraint_problem, _prompt_lists_problem, _text_problem, _stop_problem)


def limit_problem(body: Any, limits: RequestLimits) -> Problem | None:
    """(message, param) for the first cap a parsed request body breaks, or None (pure)."""
    if not isinstance(body, dict):
        return None  # the request schema answers that
    for check in CHECKS:
        problem = check(body, limits)
        if problem:
            return problem
    return None


def engine_limits_env(limits: RequestLimits) -> dict[str, str]:
    """vLLM 0.29's own caps (environment of the engine processes) set to the same values, so
    a request that reaches an engine some other way than through the ingress meets them too:
    choices and beam width (``VLLM_MAX_N_SEQUENCES``), prompts in one completions request
    (``VLLM_MAX_COMPLETION_PROMPTS``) and stop strings (``VLLM_MAX_STOP_STRINGS``). vLLM has
    no cap on structured-output schemas or on text: those hold at the ingress only."""
    return {
        "VLLM_MAX_N_SEQUENCES": str(max(limits.max_n, limits.max_beam_width)),
        "VLLM_MAX_COMPLETION_PROMPTS": str(limits.max_prompts),
        "VLLM_MAX_STOP_STRINGS": str(max(limits.max_stop, 1)),
    }
