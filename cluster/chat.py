"""The OpenAI chat fine-tuning format, shared by fine-tuning, evaluation, benchmarks and serving.

One JSON object per line::

    {"messages": [{"role": "system" | "user" | "assistant", "content": "...",
                   "weight": 0 | 1  # optional, assistant turns only
                  }, ...],
     "metadata": {...}}          # optional, ours: facts to check, topic, kind

:func:`read_chat_jsonl` checks a whole file and raises one :class:`ChatFormatError` that lists
every bad line with its number, so a user fixes the file in one pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
_MESSAGE_KEYS = {"role", "content", "weight", "name"}


@dataclass(frozen=True)
class Example:
    """One conversation from a JSONL file (``line`` is 1-based)."""

    messages: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    @property
    def prompt(self) -> list[dict[str, Any]]:
        """The conversation up to (not including) its final assistant turn."""
        return self.messages[:-1] if self.messages[-1]["role"] == "assistant" else self.messages

    @property
    def reference(self) -> str | None:
        """The final assistant turn: the answer a model is compared with."""
        last = self.messages[-1]
        return last["content"] if last["role"] == "assistant" else None


class ChatFormatError(ValueError):
    """Every bad line of a chat file, reported together."""

    def __init__(self, source: str, errors: Sequence[tuple[int, str]], total: int):
        self.source, self.total = source, total
        self.errors = list(errors)
        shown = "\n".join(f"  line {n}: {msg}" for n, msg in self.errors[:50])
        more = f"\n  ... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(
            f"{source}: {len(self.errors)} bad line{'s' if len(self.errors) != 1 else ''} of "
            f'{total}. Each line must be a JSON object {{"messages": [{{"role": '
            f'"system|user|assistant", "content": "..."}}, ...]}} with at least one '
            f"assistant turn.\n{shown}{more}"
        )

    def __reduce__(self) -> tuple:  # picklable across Ray processes
        return (type(self), (self.source, self.errors, self.total))


def message_problems(messages: Any, *, need_assistant: bool = True) -> list[str]:
    """What is wrong with a ``messages`` list (empty when it is fine)."""
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty list"]
    problems = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            problems.append(f"{where} must be an object with role and content")
            continue
        role = msg.get("role")
        if role is None:
            problems.append(f"{where} has no 'role'")
        elif role not in ROLES:
            problems.append(f"{where}.role {role!r} is not one of {', '.join(ROLES)}")
        content = msg.get("content")
        if not isinstance(content, str):
            problems.append(f"{where}.content must be a string (got {type(content).__name__})")
        elif not content.strip():
            problems.append(f"{where}.content is empty")
        if "weight" in msg:
            if role != "assistant":
                problems.append(f"{where}.weight is only allowed on assistant turns")
            elif msg["weight"] not in (0, 1):
                problems.append(f"{where}.weight must be 0 or 1 (got {msg['weight']!r})")
        unknown = set(msg) - _MESSAGE_KEYS
        if unknown:
            problems.append(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if need_assistant and "assistant" not in roles:
        problems.append("no assistant turn to learn from")
    if "system" in roles[1:]:
        problems.append("a system message may only come first")
    return problems


def parse_line(
    text: str, *, need_assistant: bool = True, final_assistant: bool = False
) -> tuple[Example | None, list[str]]:
    """One JSONL line as an Example, or the problems that make it unusable. ``final_assistant``
    (an eval set) asks for the last turn to be the assistant's reference answer."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON ({exc.msg} at column {exc.colno})"]
    if not isinstance(obj, dict) or "messages" not in obj:
        return None, ["missing 'messages'"]
    problems = message_problems(
        obj["messages"], need_assistant=need_assistant and not final_assistant
    )
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        problems.append("'metadata' must be an object")
    if not problems and final_assistant and obj["messages"][-1]["role"] != "assistant":
        problems = ["the last turn must be the assistant's reference answer"]
    if problems:
        return None, problems
    return Example(messages=obj["messages"], metadata=meta), []


def read_chat_jsonl(
    path: str | Path, *, need_assistant: bool = True, final_assistant: bool = False
) -> list[Example]:
    """Read and check a whole file; raise ChatFormatError listing every bad line."""
    path = Path(path)
    if not path.is_file():
        raise ChatFormatError(str(path), [(0, "file not found; check the path")], 0)
    examples, errors, total = [], [], 0
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        total += 1
        # An eval set names its own, more specific rule for the assistant turn.
        ex, problems = parse_line(
            raw, need_assistant=need_assistant, final_assistant=final_assistant
        )
        if problems:
            errors.extend((n, p) for p in problems)
        else:
            examples.append(Example(ex.messages, ex.metadata, n))
    if errors:
        raise ChatFormatError(str(path), errors, total)
    if not examples:
        raise ChatFormatError(str(path), [(0, "the file has no examples")], 0)
    return examples


def render(tokenizer: Any, messages: Sequence[dict[str, Any]], *, generation: bool) -> str:
    """The model's chat template applied to ``messages`` (text, not tokens)."""
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(clean, add_generation_prompt=generation, tokenize=False)


def assistant_spans(
    tokenizer: Any, messages: Sequence[dict[str, Any]]
) -> tuple[str, list[tuple[int, int, float]]]:
    """The rendered conversation and the character spans of its assistant turns (with their
    weight). SmolLM2's template has no generation tags, so each span is found by rendering the
    prefix before the turn (with the generation prompt) and the conversation through the turn."""
    full = render(tokenizer, messages, generation=False)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:i], generation=True))
        end = len(render(tokenizer, messages[: i + 1], generation=False))
        if not full.startswith(render(tokenizer, messages[: i + 1], generation=False)):
            raise ValueError("the chat template does not render conversations prefix-stably")
        spans.append((start, end, float(msg.get("weight", 1))))
    return full, spans


def _normal_text(text: str) -> str:
    return " ".join(text.lower().split())


def answer_key(text: str) -> str:
    """A short digest of an answer that ignores case and whitespace: two answers that are
    the same word for word have the same key (``verbatim_references`` compares such texts)."""
    return hashlib.sha1(_normal_text(text).encode()).hexdigest()[:16]


def verbatim_references(
    train: Sequence[Example], heldout: Sequence[Example]
) -> list[tuple[int, str]]:
    """Held-out references (final assistant turns) that repeat a training assistant answer
    word for word, ignoring case and whitespace: ``(line, reference)`` for each, in file order.

    A model scored against such a reference is partly scored on recall of its training data,
    not on answering new questions."""
    seen = {
        answer_key(m["content"]) for ex in train for m in ex.messages if m["role"] == "assistant"
    }
    return [
        (ex.line, ex.reference)
        for ex in heldout
        if ex.reference is not None and answer_key(ex.reference) in seen
    ]
