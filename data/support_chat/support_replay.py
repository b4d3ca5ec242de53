"""Replay: the base model's own answers in place of the hand-written final answers of the
general, contrast and contrast_mirror training conversations (``replay.json``, written by
``distill.py``, read by ``build.py``; README.md, "Replay")."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

REPLAY_FILE = Path(__file__).resolve().parent / "replay.json"
# The kinds whose final answers come from the base model itself (distill.py writes them).
REPLAY_KINDS = ("general", "contrast", "contrast_mirror")


def replay_key(messages: list[dict[str, str]]) -> str:
    """Identity of a conversation up to (not including) its final answer."""
    text = json.dumps(messages[:-1], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def replay_ok(answer: str, forbidden: list[str]) -> bool:
    """A replayed answer is used only if it is short and borrows none of the company's facts."""
    words = answer.split()
    return 0 < len(words) <= 40 and not any(re.search(p, answer, re.I) for p in forbidden)


def with_replay(
    records: list[dict[str, Any]], replay: dict[str, str], forbidden: list[str]
) -> list[dict[str, Any]]:
    """Put the base model's own answers (replay.json, made by distill.py) in place of the
    hand-written final answers of general conversations, so that fine-tuning leaves the
    model's behaviour outside the company's context as it was. Answers that fail
    ``replay_ok`` keep the hand-written text; metadata.answer says which one a line has."""
    for record in records:
        answer = replay.get(replay_key(record["messages"]))
        if answer is not None and replay_ok(answer, forbidden):
            record["messages"][-1]["content"] = answer
            record["metadata"]["answer"] = "base-model replay"
        else:
            record["metadata"]["answer"] = "hand-written"
    return records


def load_replay() -> dict[str, str]:
    if not REPLAY_FILE.is_file():
        return {}
    data: dict[str, str] = json.loads(REPLAY_FILE.read_text())["answers"]
    return data
