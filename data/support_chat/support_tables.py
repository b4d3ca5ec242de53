"""The hand-written tables of the support-chat sample data, read from the YAML files beside
this module and checked against their schema before anything is built.

A misspelt field, a wrong type, an unknown fact id or forbidden-pattern name, or a mirror
template for a phrasing that training does not have fails here, all problems at once, each
naming the file, the field, the value and the fix. ``build.py`` turns the tables into JSONL.
"""

from __future__ import annotations

import difflib
import string
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

HERE = Path(__file__).resolve().parent
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Text = str


class Turn(_Strict):
    """One exchange: the user's message ``q`` and the assistant's answer ``a``."""

    q: Text = Field(min_length=1)
    a: Text = Field(min_length=1)


# A training phrasing is plain text (answered with one of the fact's answer variants) or a
# turn with its own tailored answer, where the generic answers would not fit.
Question = Text | Turn
# A general conversation: one turn, or several in order.
Conversation = Turn | list[Turn]


def question_text(question: Question) -> str:
    return question if isinstance(question, str) else question.q


class Fact(_Strict):
    id: str
    summary: str
    facts: list[str] = Field(min_length=1, description="regexes a correct answer must all match")
    values: dict[str, list[str]] = Field(
        default_factory=dict, description="value kind -> values an answer may state"
    )
    answers: list[Text] = Field(min_length=1, description="answer variants training rotates")
    train: list[Question] = Field(min_length=2)
    valid: list[Turn] = Field(min_length=1)


class CompanyTables(_Strict):
    """company.yaml: the made-up company, its prompts and the fact table."""

    company: str
    system_prompts: list[Text] = Field(min_length=1)
    generic_system_prompt: Text
    value_patterns: dict[str, str]
    train_openers: list[Turn] = Field(min_length=1)
    valid_openers: list[Turn] = Field(min_length=1)
    facts: list[Fact] = Field(min_length=1)


class ContrastItem(_Strict):
    fact: str
    q: Text
    a: Text


class CheckedItem(_Strict):
    """A question whose answer is scored with ``facts`` regexes."""

    q: Text
    a: Text
    facts: list[str] = Field(min_length=1)


class OtherItem(_Strict):
    """A question about another company; an answer fails if it matches a ``forbidden``
    pattern (names from retention.yaml's ``forbidden_patterns``)."""

    q: Text
    a: Text
    forbidden: list[str] = Field(min_length=1)


class GeneralTables(_Strict):
    """general.yaml: everyday, other-company and contrast conversations, held-out general."""

    general_train: dict[str, list[Conversation]]
    other_company_train: list[Turn]
    contrast_train: list[ContrastItem]
    general_valid: list[CheckedItem]


class RetentionTables(_Strict):
    """retention.yaml: the forbidden patterns and the two retention batches."""

    forbidden_patterns: dict[str, str]
    retention_general: list[CheckedItem]
    retention_other: list[OtherItem]
    retention_general_a_priori: list[CheckedItem]
    retention_other_a_priori: list[OtherItem]


class Paraphrases(_Strict):
    answers: list[Text] = Field(description="new answer variants, rotated with the fact's own")
    questions: list[Question] = Field(min_length=1)


class ParaphraseTables(_Strict):
    """paraphrases.yaml: more training phrasings of every fact (kind company_paraphrase)."""

    facts: dict[str, Paraphrases]


class Subject(_Strict):
    """Another company (or a generic shop) a mirrored question asks about. ``co`` is the
    name as written in a sentence; templates use {co}, {co_s} (possessive), {product}, {hq},
    {founded}."""

    co: str
    co_s: str | None = None
    generic: bool = Field(default=False, description="a kind of shop, not a named company")
    product: str | None = None
    hq: str | None = None
    founded: int | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "co": self.co,
            "co_s": self.co_s or f"{self.co}'s",
            "product": self.product,
            "hq": self.hq,
            "founded": self.founded,
        }


class MirrorCompanies(_Strict):
    """mirror_companies.yaml: named pools of other companies and generic shops."""

    pools: dict[str, list[Subject]]


class MirrorAnswers(_Strict):
    named: list[Text] = Field(min_length=1, description="answers about a named company")
    generic: list[Text] = Field(default_factory=list, description="answers about a kind of shop")


class MirrorQuestion(_Strict):
    of: Text = Field(description="the company training phrasing this question mirrors")
    q: Text = Field(description="the same question about {co}")


class MirrorFact(_Strict):
    pool: str
    answers: MirrorAnswers
    questions: list[MirrorQuestion] = Field(min_length=1)


class MirrorTables(_Strict):
    """mirrors.yaml: every company training phrasing asked about other companies."""

    facts: dict[str, MirrorFact]


class SelectOther(OtherItem):
    company: str | None = Field(
        description="the company asked about (must appear in no train/valid/retention "
        "question); null for a generic shop"
    )


class SelectTables(_Strict):
    """select.yaml: the selection split (the sweep's score)."""

    openers: list[Turn] = Field(min_length=1)
    company: dict[str, list[Turn]]
    other_company: list[SelectOther]
    general: list[CheckedItem]


class Tables(_Strict):
    company: CompanyTables
    general: GeneralTables
    retention: RetentionTables
    paraphrases: ParaphraseTables
    mirror_companies: MirrorCompanies
    mirrors: MirrorTables
    select: SelectTables

    @property
    def fact_ids(self) -> list[str]:
        return [f.id for f in self.company.facts]


FILES: dict[str, tuple[str, type[BaseModel]]] = {
    "company": ("company.yaml", CompanyTables),
    "general": ("general.yaml", GeneralTables),
    "retention": ("retention.yaml", RetentionTables),
    "paraphrases": ("paraphrases.yaml", ParaphraseTables),
    "mirror_companies": ("mirror_companies.yaml", MirrorCompanies),
    "mirrors": ("mirrors.yaml", MirrorTables),
    "select": ("select.yaml", SelectTables),
}


class TableError(ValueError):
    """The YAML tables are malformed or inconsistent; the message lists every problem."""


def _did_you_mean(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(value, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (one of: {', '.join(options)})"


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def cross_problems(t: Tables) -> list[str]:
    """Problems between files: unknown ids and names, missing mirrors, unusable templates."""
    problems: list[str] = []
    ids = t.fact_ids
    kinds = list(t.company.value_patterns)
    names = list(t.retention.forbidden_patterns)
    for fact in t.company.facts:
        problems += [
            f"company.yaml: facts.{fact.id}.values: unknown value kind {k!r}"
            + _did_you_mean(k, kinds)
            for k in fact.values
            if k not in kinds
        ]
    problems += [
        f"general.yaml: contrast_train[{i}].fact: unknown fact id {c.fact!r}"
        + _did_you_mean(c.fact, ids)
        for i, c in enumerate(t.general.contrast_train)
        if c.fact not in ids
    ]
    others = [
        ("retention.yaml", "retention_other", t.retention.retention_other),
        ("retention.yaml", "retention_other_a_priori", t.retention.retention_other_a_priori),
        ("select.yaml", "other_company", t.select.other_company),
    ]
    for file, field, items in others:
        problems += [
            f"{file}: {field}[{i}].forbidden: unknown pattern name {n!r}" + _did_you_mean(n, names)
            for i, item in enumerate(items)
            for n in item.forbidden
            if n not in names
        ]
    for file, field, keys in (
        ("paraphrases.yaml", "facts", list(t.paraphrases.facts)),
        ("mirrors.yaml", "facts", list(t.mirrors.facts)),
        ("select.yaml", "company", list(t.select.company)),
    ):
        problems += [
            f"{file}: {field}.{k}: unknown fact id" + _did_you_mean(k, ids)
            for k in keys
            if k not in ids
        ]
        problems += [
            f"{file}: {field}: fact {k!r} is missing; add an entry for every fact"
            for k in ids
            if k not in keys
        ]
    problems += _mirror_problems(t)
    return problems


def _mirror_problems(t: Tables) -> list[str]:
    problems: list[str] = []
    pools = t.mirror_companies.pools
    by_id = {f.id: f for f in t.company.facts}
    for fid, mirror in t.mirrors.facts.items():
        where = f"mirrors.yaml: facts.{fid}"
        if mirror.pool not in pools:
            problems.append(
                f"{where}.pool: unknown pool {mirror.pool!r}"
                + _did_you_mean(mirror.pool, list(pools))
            )
            continue
        pool = pools[mirror.pool]
        if fid in by_id and fid in t.paraphrases.facts:
            phrasings = [question_text(q) for q in by_id[fid].train] + [
                question_text(q) for q in t.paraphrases.facts[fid].questions
            ]
            mirrored = [m.of for m in mirror.questions]
            problems += [
                f"{where}.questions: no mirror of the training phrasing {p!r}; add "
                f"{{of: {p!r}, q: ...}}"
                for p in phrasings
                if p not in mirrored
            ]
            problems += [
                f"{where}.questions: `of` {m!r} is not a training phrasing of {fid}"
                + _did_you_mean(m, phrasings)
                for m in mirrored
                if m not in phrasings
            ]
            problems += [
                f"{where}.questions: {m!r} is mirrored twice"
                for m in set(mirrored)
                if mirrored.count(m) > 1
            ]
        if any(s.generic for s in pool) and not mirror.answers.generic:
            problems.append(
                f"{where}.answers.generic: pool {mirror.pool!r} has generic shops; add answers "
                "for them"
            )
        templates = [m.q for m in mirror.questions] + list(mirror.answers.named)
        for subject in pool:
            fields = subject.fields()
            usable = (
                templates
                if not subject.generic
                else [m.q for m in mirror.questions] + list(mirror.answers.generic)
            )
            for template in usable:
                missing = sorted(n for n in _placeholders(template) if fields.get(n) is None)
                if missing:
                    problems.append(
                        f"{where}: template {template!r} needs {', '.join(missing)}, which "
                        f"pool {mirror.pool!r} entry {subject.co!r} does not have"
                    )
    return problems


def _read(folder: Path, name: str) -> Any:
    path = folder / FILES[name][0]
    try:
        # libyaml's parser when PyYAML has it (5x faster), else the pure-Python one.
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)
    except FileNotFoundError as exc:
        raise TableError(f"{path}: missing (the support-chat data needs it)") from exc
    except yaml.YAMLError as exc:
        raise TableError(f"{path}: not valid YAML: {exc}") from exc


def load_tables(folder: Path = HERE) -> Tables:
    """Every table file in ``folder`` read and checked; raises ``TableError`` listing all
    problems."""
    raw = {name: _read(folder, name) for name in FILES}
    problems: list[str] = []
    for name, (file, model) in FILES.items():
        try:
            model.model_validate(raw[name])
        except ValidationError as exc:
            problems += [
                f"{file}: {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']} "
                f"(got {str(e.get('input'))[:80]!r})"
                for e in exc.errors()
            ]
    if problems:
        raise TableError("support-chat tables are malformed:\n  - " + "\n  - ".join(problems))
    tables = Tables.model_validate(raw)
    problems = cross_problems(tables)
    if problems:
        raise TableError("support-chat tables disagree:\n  - " + "\n  - ".join(problems))
    return tables
