"""Build the shipped support-chat sample dataset (train / valid / retention / select JSONL).

Everything is generated from the hand-written tables in the YAML files beside this script
(``support_tables.py`` reads and checks them): a fact table for the fictional e-bike maker
"Pebblecrest Cycles" with question phrasings and answer variants per fact (company.yaml),
general-knowledge, other-company and "contrast" conversations (general.yaml), the retention
set (retention.yaml), the recipe levers (paraphrases.yaml, mirrors.yaml,
mirror_companies.yaml) and the selection split (select.yaml). The base model's replay answers
come from replay.json (``support_replay.py``). Randomness (system-prompt choice,
answer-variant rotation, two-turn openers and the shuffles) comes from fixed seeds, so the
output is byte-identical on every run; ``support_checks.py`` checks the result before
anything is written.

Usage (from the repository root):
    python data/support_chat/build.py          # (re)write the JSONL files
    python data/support_chat/build.py --check  # exit 1 if the files on disk are stale
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any, TypedDict

# This folder is not a package: its modules import each other however the script is run
# (as a script, from distill.py or from the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from support_replay import REPLAY_FILE, REPLAY_KINDS, load_replay, replay_key, with_replay
from support_tables import (
    Conversation,
    Fact,
    Question,
    TableError,
    Tables,
    Turn,
    load_tables,
)

__all__ = ["REPLAY_FILE", "REPLAY_KINDS", "build_all", "load_replay", "replay_key"]

OUT_DIR = Path(__file__).resolve().parent
SEED = 20240611

Message = dict[str, str]


class Record(TypedDict):
    """One JSONL line."""

    messages: list[Message]
    metadata: dict[str, Any]


def conversation(system: str | None, turns: list[Turn]) -> list[Message]:
    """Turn (user, assistant) pairs into an OpenAI-style message list."""
    messages: list[Message] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    for turn in turns:
        messages.append({"role": "user", "content": turn.q})
        messages.append({"role": "assistant", "content": turn.a})
    return messages


def turns_of(conv: Conversation) -> list[Turn]:
    return [conv] if isinstance(conv, Turn) else list(conv)


def answered(question: Question, answers: list[str], variant: int) -> Turn:
    """The question with its tailored answer, or with the answer variants rotated."""
    if isinstance(question, Turn):
        return question
    return Turn(q=question, a=answers[variant % len(answers)])


def company_meta(fact: Fact, kind: str = "company") -> dict[str, Any]:
    return {"kind": kind, "topic": fact.id, "facts": list(fact.facts)}


def held_out_meta(fact: Fact, tables: Tables) -> dict[str, Any]:
    """Company metadata plus the values the evaluation's wrong-fact check compares with."""
    patterns = tables.company.value_patterns
    values = [
        {"kind": kind, "pattern": patterns[kind], "expected": list(expected)}
        for kind, expected in fact.values.items()
    ]
    return {**company_meta(fact), **({"values": values} if values else {})}


def build_company_train(tables: Tables, rng: random.Random) -> list[Record]:
    """~9 phrasings per fact; two per fact become two-turn conversations."""
    facts, openers = tables.company.facts, tables.company.train_openers
    records: list[Record] = []
    opener_index = 0
    for k, fact in enumerate(facts):
        greeting_pos, other_fact_pos = rng.sample(range(len(fact.train)), 2)
        for i, question in enumerate(fact.train):
            turns: list[Turn] = []
            if i == greeting_pos:
                turns.append(openers[opener_index % len(openers)])
                opener_index += 1
            elif i == other_fact_pos:
                other = facts[(k + 1 + rng.randrange(len(facts) - 1)) % len(facts)]
                turns.append(answered(other.train[0], other.answers, 0))
            turns.append(answered(question, fact.answers, k + i))
            system = rng.choice(tables.company.system_prompts)
            records.append(
                {"messages": conversation(system, turns), "metadata": company_meta(fact)}
            )
    return records


def build_company_valid(tables: Tables, rng: random.Random) -> list[Record]:
    """Held-out paraphrases with held-out answers (never a training answer); every 9th item
    is preceded by a greeting turn."""
    openers = tables.company.valid_openers
    records: list[Record] = []
    n = 0
    for fact in tables.company.facts:
        for turn in fact.valid:
            turns: list[Turn] = []
            if n % 9 == 4:
                turns.append(openers[(n // 9) % len(openers)])
            turns.append(turn)
            system = rng.choice(tables.company.system_prompts)
            records.append(
                {"messages": conversation(system, turns), "metadata": held_out_meta(fact, tables)}
            )
            n += 1
    return records


def general_system(tables: Tables, rng: random.Random) -> str | None:
    """About half of the general conversations carry a generic system prompt."""
    return tables.company.generic_system_prompt if rng.random() < 0.5 else None


def build_general_train(tables: Tables, rng: random.Random) -> list[Record]:
    general = [c for convs in tables.general.general_train.values() for c in convs]
    records: list[Record] = [
        {
            "messages": conversation(general_system(tables, rng), turns_of(conv)),
            "metadata": {"kind": "general"},
        }
        for conv in general
    ]
    records += [
        {
            "messages": conversation(general_system(tables, rng), [turn]),
            "metadata": {"kind": "general", "topic": "other_company"},
        }
        for turn in tables.general.other_company_train
    ]
    return records


def build_contrast_train(tables: Tables) -> list[Record]:
    """Contrast conversations: exactly half with no system prompt, half with the generic one.

    They use their own seeded generator so the other files' random choices stay unchanged.
    """
    items = tables.general.contrast_train
    rng = random.Random(SEED + 3)
    generic = tables.company.generic_system_prompt
    systems: list[str | None] = [None, generic] * (len(items) // 2)
    systems += [None] * (len(items) - len(systems))
    rng.shuffle(systems)
    return [
        {
            "messages": conversation(system, [Turn(q=item.q, a=item.a)]),
            "metadata": {"kind": "contrast", "topic": item.fact},
        }
        for system, item in zip(systems, items, strict=True)
    ]


def build_general_valid(tables: Tables, rng: random.Random) -> list[Record]:
    return [
        {
            "messages": conversation(general_system(tables, rng), [Turn(q=item.q, a=item.a)]),
            "metadata": {"kind": "general", "facts": list(item.facts)},
        }
        for item in tables.general.general_valid
    ]


def build_retention(tables: Tables) -> list[Record]:
    """Asked without any system prompt (the model's default behaviour).

    The model-selected first batch keeps its line numbers (1-45); the a-priori batch follows.
    """
    r = tables.retention
    records: list[Record] = []
    for origin, general, other in (
        ("model-selected", r.retention_general, r.retention_other),
        ("a-priori", r.retention_general_a_priori, r.retention_other_a_priori),
    ):
        records += [
            {
                "messages": conversation(None, [Turn(q=item.q, a=item.a)]),
                "metadata": {"kind": "general", "facts": list(item.facts), "origin": origin},
            }
            for item in general
        ]
        records += [
            {
                "messages": conversation(None, [Turn(q=item.q, a=item.a)]),
                "metadata": {
                    "kind": "other_company",
                    "forbidden": [r.forbidden_patterns[n] for n in item.forbidden],
                    "origin": origin,
                },
            }
            for item in other
        ]
    return records


def build_company_paraphrase(tables: Tables) -> list[Record]:
    """Kind company_paraphrase: each fact's new phrasings (paraphrases.yaml), answered with
    its answer variants (company.yaml's, then the new ones) in rotation, with the company
    system prompts. Their own seeded generator leaves every existing row as it was."""
    rng = random.Random(SEED + 4)
    records: list[Record] = []
    for k, fact in enumerate(tables.company.facts):
        extra = tables.paraphrases.facts[fact.id]
        answers = [*fact.answers, *extra.answers]
        for i, question in enumerate(extra.questions):
            system = rng.choice(tables.company.system_prompts)
            records.append(
                {
                    "messages": conversation(system, [answered(question, answers, k + i)]),
                    "metadata": company_meta(fact, "company_paraphrase"),
                }
            )
    return records


MIRROR_STRIDE = 7  # each fact starts its pool rotation somewhere else


def build_contrast_mirror(tables: Tables) -> list[Record]:
    """Kind contrast_mirror: every company training phrasing asked about other companies
    (mirrors.yaml), twice: once without a system prompt, once with the generic one, each time
    about the next company of the fact's pool, answered with no Pebblecrest value."""
    systems = (None, tables.company.generic_system_prompt)
    records: list[Record] = []
    for k, fact in enumerate(tables.company.facts):
        mirror = tables.mirrors.facts[fact.id]
        pool = tables.mirror_companies.pools[mirror.pool]
        row = 0
        for question in mirror.questions:
            for system in systems:
                subject = pool[(MIRROR_STRIDE * k + row) % len(pool)]
                answers = mirror.answers.generic if subject.generic else mirror.answers.named
                fields = subject.fields()
                turn = Turn(
                    q=question.q.format(**fields), a=answers[row % len(answers)].format(**fields)
                )
                records.append(
                    {
                        "messages": conversation(system, [turn]),
                        "metadata": {"kind": "contrast_mirror", "topic": fact.id},
                    }
                )
                row += 1
    return records


def build_select(tables: Tables) -> list[Record]:
    """select.jsonl: company questions with the company prompts (every 11th after a greeting),
    then general and other-company questions without a system prompt, shuffled."""
    rng = random.Random(SEED + 5)
    s = tables.select
    records: list[Record] = []
    n = 0
    for fact in tables.company.facts:
        for turn in s.company[fact.id]:
            turns = [s.openers[(n // 11) % len(s.openers)]] if n % 11 == 5 else []
            system = rng.choice(tables.company.system_prompts)
            records.append(
                {
                    "messages": conversation(system, [*turns, turn]),
                    "metadata": held_out_meta(fact, tables),
                }
            )
            n += 1
    records += [
        {
            "messages": conversation(None, [Turn(q=item.q, a=item.a)]),
            "metadata": {"kind": "general", "facts": list(item.facts)},
        }
        for item in s.general
    ]
    forbidden = tables.retention.forbidden_patterns
    records += [
        {
            "messages": conversation(None, [Turn(q=item.q, a=item.a)]),
            "metadata": {
                "kind": "other_company",
                "forbidden": [forbidden[n] for n in item.forbidden],
            },
        }
        for item in s.other_company
    ]
    random.Random(SEED + 7).shuffle(records)
    return records


def build_all(tables: Tables | None = None, *, check: bool = True) -> dict[str, list[Record]]:
    """Every output file's records, checked by ``support_checks.validate`` unless ``check`` is
    False (a few seconds; the tests skip it where they only compare outputs)."""
    from support_checks import validate

    tables = tables or load_tables()
    forbidden = list(tables.retention.forbidden_patterns.values())
    rng = random.Random(SEED)
    company_train = build_company_train(tables, rng)
    replay = load_replay()
    general_train = with_replay(
        build_general_train(tables, rng) + build_contrast_train(tables), replay, forbidden
    )
    train = company_train + general_train
    random.Random(SEED + 1).shuffle(train)
    # The new kinds come after today's rows, which keep their lines, bytes and order: a
    # data.mix weight of 0 for every new kind trains on exactly the rows it did before.
    levers = build_company_paraphrase(tables) + with_replay(
        build_contrast_mirror(tables), replay, forbidden
    )
    random.Random(SEED + 6).shuffle(levers)
    train += levers

    valid = build_company_valid(tables, rng) + build_general_valid(tables, rng)
    random.Random(SEED + 2).shuffle(valid)

    data = {
        "train.jsonl": train,
        "valid.jsonl": valid,
        "retention.jsonl": build_retention(tables),
        "select.jsonl": build_select(tables),
    }
    if check:
        validate(data, tables)
    return data


def serialize(records: list[Record]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files on disk are out of date"
    )
    args = parser.parse_args()

    try:
        outputs = {name: serialize(records) for name, records in build_all().items()}
    except TableError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        stale = [
            name
            for name, text in outputs.items()
            if not (OUT_DIR / name).exists() or (OUT_DIR / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"{name} is out of date; run: python data/support_chat/build.py")
        return 1 if stale else 0

    for name, text in outputs.items():
        # Atomic: a reader (or a crashed build) never sees a half-written file.
        tmp = OUT_DIR / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8", newline="\n")
        os.replace(tmp, OUT_DIR / name)
        print(f"wrote {name}: {text.count(chr(10))} conversations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
