"""The support-chat sample data (``data/support_chat/``): the build is deterministic and matches
the shipped files; the judging sets stay byte-identical; the selection split is disjoint from
everything else; the recipe levers (new training kinds) have their counts and borrow no
Pebblecrest value; and today's fine-tune recipe still trains on exactly today's rows."""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import random
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
from transformers import AutoTokenizer

from cluster.config import load_config
from jobs.eval.metrics import _value as value  # how the wrong-fact rate compares values
from jobs.train.config import FinetuneConfig
from jobs.train.data import check_line, copies, to_units
from tests.conftest import ASSETS, REPO

DATA = REPO / "data" / "support_chat"
RECIPE = REPO / "jobs" / "configs" / "finetune" / "smollm2_lora.yaml"
# The files that judge the verdict, as committed before the recipe levers existed
# (sha256 of main at cc313fd). They must never change: selecting on them would bias the verdict.
JUDGING_SHA256 = {
    "valid.jsonl": "b48161da9819816118d32e241640c444a646182da88fcb3a73f3b9b34aede358",
    "retention.jsonl": "00c137566bda94ee5d8aab85547b0bf4cc00ad1d3b96636819949b1758d56afa",
}
# train.jsonl as it was (392 lines, the same commit): its rows open today's file unchanged.
TODAYS_TRAIN_LINES = 392
TODAYS_TRAIN_SHA256 = "bfcc5713a30adf4964164e909187b5f95c484d2478c61fce77bb1f3d51bbec35"
NEW_KINDS = {"company_paraphrase", "contrast_mirror"}


def load_module(name: str) -> ModuleType:
    """A module of data/support_chat (not a package) under a name no installed package has."""
    spec = importlib.util.spec_from_file_location(f"support_chat_{name}", DATA / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_module("build")


@pytest.fixture(scope="module")
def built(build: ModuleType) -> dict[str, list[dict[str, Any]]]:
    """One checked build (the build's own consistency checks run here, a few seconds)."""
    return build.build_all()


def read(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def normalize(text: str) -> str:
    table = str.maketrans(
        "", "", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u2018\u2019\u201c\u201d\u2013"
    )
    return " ".join(text.lower().translate(table).split())


def questions(records: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for r in records for m in r["messages"] if m["role"] == "user"]


def test_the_build_is_deterministic_and_gives_the_shipped_files(build, built):
    again = build.build_all(check=False)
    for name, records in built.items():
        text = build.serialize(records)
        assert build.serialize(again[name]) == text, f"{name} differs between two builds"
        assert (DATA / name).read_text(encoding="utf-8") == text, (
            f"{name} on disk is stale; run: python data/support_chat/build.py"
        )


@pytest.mark.parametrize("name", sorted(JUDGING_SHA256))
def test_the_judging_sets_stay_byte_identical(name):
    data = (DATA / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == JUDGING_SHA256[name]


@pytest.mark.parametrize("name", sorted(JUDGING_SHA256))
def test_the_judging_sets_equal_mains(name):
    """The same against the main branch, where git and the branch are there."""
    try:
        main = subprocess.run(
            ["git", "show", f"main:data/support_chat/{name}"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git checkout with a main branch here")
    assert (DATA / name).read_bytes() == main


def test_todays_training_rows_open_the_file_unchanged():
    lines = (DATA / "train.jsonl").read_text().splitlines(keepends=True)
    today = "".join(lines[:TODAYS_TRAIN_LINES]).encode()
    assert hashlib.sha256(today).hexdigest() == TODAYS_TRAIN_SHA256
    kinds = [json.loads(line)["metadata"]["kind"] for line in lines]
    assert not NEW_KINDS & set(kinds[:TODAYS_TRAIN_LINES])
    assert set(kinds[TODAYS_TRAIN_LINES:]) == NEW_KINDS


def test_the_new_kinds_have_their_counts():
    train = read("train.jsonl")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in train:
        by_kind.setdefault(r["metadata"]["kind"], []).append(r)
    facts = sorted({r["metadata"]["topic"] for r in by_kind["company"]})
    assert len(facts) == 22
    # 7 new phrasings per fact, so 16 distinct phrasings per fact with today's 9.
    assert len(by_kind["company_paraphrase"]) == 22 * 7
    for fact in facts:
        asked = {
            normalize(questions([r])[-1])
            for r in by_kind["company"] + by_kind["company_paraphrase"]
            if r["metadata"]["topic"] == fact
        }
        assert len(asked) >= 15, (fact, len(asked))
    company_prompts = {r["messages"][0]["content"] for r in by_kind["company"]}
    assert {r["messages"][0]["content"] for r in by_kind["company_paraphrase"]} <= company_prompts
    # Every company phrasing (16 per fact) mirrored twice: no system prompt and the generic one.
    mirrors = by_kind["contrast_mirror"]
    assert len(mirrors) == 22 * 16 * 2
    assert {r["metadata"]["topic"] for r in mirrors} == set(facts)
    systems = [
        r["messages"][0]["content"] if r["messages"][0]["role"] == "system" else None
        for r in mirrors
    ]
    assert systems.count(None) == systems.count("You are a helpful assistant.") == 22 * 16
    select = read("select.jsonl")
    counts = {
        k: sum(r["metadata"]["kind"] == k for r in select)
        for k in ("company", "other_company", "general")
    }
    assert counts == {"company": 44, "other_company": 30, "general": 30}
    for fact in facts:
        assert sum(r["metadata"].get("topic") == fact for r in select) == 2, fact


def test_mirror_answers_state_no_pebblecrest_value():
    """Checked against the judging sets' own definitions: retention's forbidden patterns and
    the values valid.jsonl expects, not the build's lists."""
    forbidden = {p for r in read("retention.jsonl") for p in r["metadata"].get("forbidden", [])}
    values: dict[str, set[str]] = {}
    for r in read("valid.jsonl"):
        for v in r["metadata"].get("values", []):
            values.setdefault(v["pattern"], set()).update(value(e) for e in v["expected"])
    mirrors = [r for r in read("train.jsonl") if r["metadata"]["kind"] == "contrast_mirror"]
    for r in mirrors:
        answer = r["messages"][-1]["content"]
        assert "crest" not in json.dumps(r["messages"]).lower(), answer
        assert not [p for p in forbidden if re.search(p, answer, re.I)], answer
        for pattern, pebblecrest in values.items():
            stated = {value(m.group(1)) for m in re.finditer(pattern, answer, re.I)}
            assert not stated & pebblecrest, answer
        digits = re.findall(r"\b\d[\d,.]*\b", answer)
        # No figure at all, but the founding years of the companies asked about.
        assert not digits or r["metadata"]["topic"] == "founded", answer


def test_the_selection_split_is_disjoint_from_train_valid_and_retention():
    select, others = (
        read("select.jsonl"),
        read("train.jsonl") + read("valid.jsonl") + read("retention.jsonl"),
    )
    mine = [normalize(q) for q in questions(select)]
    theirs = {normalize(q) for q in questions(others)}
    assert len(set(mine)) == len(mine) and not set(mine) & theirs
    answers = {
        normalize(m["content"]) for r in others for m in r["messages"] if m["role"] == "assistant"
    }
    assert not {normalize(r["messages"][-1]["content"]) for r in select} & answers
    checks = load_module("support_checks")
    near = list(checks.near_pairs(mine, sorted(theirs)))
    assert not near, near[:3]
    for r in select:
        if r["metadata"]["kind"] != "company":
            assert r["messages"][0]["role"] == "user", "no system prompt outside company items"


def test_near_pairs_agrees_with_plain_difflib():
    """The build judges near copies with numpy bounds first, difflib after: on real questions
    it must find exactly the pairs that plain difflib finds."""
    checks = load_module("support_checks")
    rng = random.Random(0)
    pool = sorted({normalize(q) for q in questions(read("train.jsonl") + read("retention.jsonl"))})
    qs, others = rng.sample(pool, 120), rng.sample(pool, 160)
    found = {(q, o) for q, o, _, _ in checks.near_pairs(qs, others)}
    plain = {
        (q, o)
        for q in qs
        for o in others
        if q != o
        and (
            difflib.SequenceMatcher(None, q.split(), o.split()).ratio() >= 0.7
            or difflib.SequenceMatcher(None, q, o).ratio() >= 0.75
        )
    }
    assert found == plain and plain, (len(found), len(plain))


@pytest.fixture(scope="module")
def tokenized() -> pa.Table:
    tok = AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")
    lines = (DATA / "train.jsonl").read_text().splitlines()
    rows = [check_line(tok, n, text, 256) for n, text in enumerate(lines, start=1)]
    assert not [r for r in rows if r["error"]]
    return pa.Table.from_pylist(rows)


def test_todays_recipe_trains_on_exactly_todays_rows(tokenized):
    """The shipped recipe's data.mix (0 for every new kind) gives the same training units, row
    for row, as today's 392-line file without a mixture (how the recipe read it before)."""
    cfg = load_config(FinetuneConfig, RECIPE)
    kinds = set(tokenized.column("kind").to_pylist())
    assert {k: cfg.data.mix.get(k) for k in kinds & NEW_KINDS} == dict.fromkeys(NEW_KINDS, 0.0)
    seed = cfg.train.seed
    for kind, line in zip(
        tokenized.column("kind").to_pylist(), tokenized.column("line").to_pylist(), strict=True
    ):
        assert copies(kind, line, cfg.data.mix, seed) == (0 if kind in NEW_KINDS else 1)
    today = tokenized.slice(0, TODAYS_TRAIN_LINES)
    for packing in (cfg.data.packing, not cfg.data.packing):
        now = to_units(
            tokenized,
            packing=packing,
            max_seq_len=cfg.data.max_seq_len,
            mix=cfg.data.mix,
            seed=seed,
        )
        before = to_units(
            today, packing=packing, max_seq_len=cfg.data.max_seq_len, mix={}, seed=seed
        )
        assert now.to_pylist() == before.to_pylist()


def test_a_weight_for_a_new_kind_adds_its_rows(tokenized):
    """The levers do something: weight 1 for contrast_mirror adds its 704 rows to the units."""
    cfg = load_config(FinetuneConfig, RECIPE)
    mix = {**cfg.data.mix, "contrast_mirror": 1.0}
    units = to_units(tokenized, packing=False, max_seq_len=256, mix=mix, seed=cfg.train.seed)
    assert units.num_rows == TODAYS_TRAIN_LINES + 704


def test_bad_tables_fail_with_the_file_the_field_and_the_fix(tmp_path):
    """Every problem at once, before anything is built: a misspelt field, a mirror for a
    phrasing training does not have, a missing mirror, an unknown forbidden-pattern name."""
    tables = load_module("support_tables")
    for path in DATA.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    company = tmp_path / "company.yaml"
    company.write_text(company.read_text().replace("    summary: Flat $29", "    sumary: Flat $29"))
    with pytest.raises(tables.TableError) as info:
        tables.load_tables(tmp_path)
    assert "company.yaml: facts.5.summary: Field required" in str(info.value)
    assert "company.yaml: facts.5.sumary: Extra inputs are not permitted" in str(info.value)

    company.write_text((DATA / "company.yaml").read_text())
    mirrors = tmp_path / "mirrors.yaml"
    mirrors.write_text(
        mirrors.read_text().replace('of: "How much is shipping?"', 'of: "How much is shiping?"')
    )
    select = tmp_path / "select.yaml"
    select.write_text(select.read_text().replace("forbidden: [name, hours]", "forbidden: [nme]"))
    with pytest.raises(tables.TableError) as info:
        tables.load_tables(tmp_path)
    text = str(info.value)
    assert "no mirror of the training phrasing 'How much is shipping?'" in text
    assert "'How much is shiping?' is not a training phrasing of shipping_cost" in text
    assert "(did you mean 'How much is shipping?'?)" in text
    assert "select.yaml: other_company[2].forbidden: unknown pattern name 'nme'" in text
    assert "(did you mean 'name'?)" in text
