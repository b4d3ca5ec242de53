import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from cluster.chat import ChatFormatError, Example, read_chat_jsonl
from jobs.train.data import (
    IGNORE,
    Schedule,
    check_line,
    collate,
    copies,
    make_unit,
    targets,
    to_units,
    tokenize_example,
)
from tests.conftest import ASSETS


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(ASSETS / "tiny-llama")


def conv(*turns, weights=None):
    roles = ["user", "assistant"] * len(turns)
    msgs = [{"role": r, "content": c} for r, c in zip(roles, turns, strict=False)]
    for i, w in (weights or {}).items():
        msgs[i]["weight"] = w
    return Example(msgs, {}, 1)


def trained_text(tok, t):
    return tok.decode([i for i, lab in zip(t.input_ids, t.labels, strict=True) if lab != IGNORE])


def test_loss_covers_assistant_turns_only(tok):
    t = tokenize_example(tok, conv("What is two plus two?", "Four.", "And three?", "Three."))
    assert trained_text(tok, t) == "Four.<|im_end|>\nThree.<|im_end|>\n"
    assert tok.decode(t.input_ids).startswith("<|im_start|>system")


def test_weight_zero_turns_are_not_trained(tok):
    t = tokenize_example(tok, conv("Q1", "Bad answer.", "Q2", "Good.", weights={1: 0}))
    assert trained_text(tok, t) == "Good.<|im_end|>\n"


def line(*turns, weights=None):
    return json.dumps({"messages": conv(*turns, weights=weights).messages})


def test_too_long_and_nothing_to_learn_are_reported_by_line(tok):
    long = check_line(tok, 7, line("word " * 200, "ok"), max_seq_len=64)
    silent = check_line(tok, 9, line("hi", "x", weights={1: 0}), max_seq_len=64)
    good = check_line(tok, 11, line("a", "b"), max_seq_len=64)
    assert long["error_kind"] == "fit" and "longer than data.max_seq_len=64" in long["error"]
    assert silent["error_kind"] == "fit" and "nothing to learn" in silent["error"]
    assert good["error"] == "" and good["n_trained"] > 0 and good["line"] == 11


def test_a_bad_line_is_a_format_error_with_its_reason(tok):
    row = check_line(tok, 3, '{"messages": [{"role": "user", "content": "q"}]}', 64)
    assert row["error_kind"] == "format" and "no assistant turn" in row["error"]
    assert "not valid JSON" in check_line(tok, 4, "{oops", 64)["error"]


def test_the_mixture_is_a_function_of_the_line():
    mix = {"company": 2.5, "general": 0.5}
    got = [copies("company", n, mix, seed=1) for n in range(1, 401)]
    assert set(got) == {2, 3} and 150 < got.count(3) < 250
    assert [copies("company", n, mix, seed=1) for n in range(1, 401)] == got
    halves = [copies("general", n, mix, seed=1) for n in range(1, 401)]
    assert set(halves) == {0, 1} and 150 < sum(halves) < 250
    assert copies("other", 5, mix, seed=1) == 1


def test_checker_lists_every_bad_line_at_once(tmp_path):
    lines = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        "not json",
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"content": "no role"}, {"role": "assistant", "content": "y"}]},
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": 2},
            ]
        },
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    with pytest.raises(ChatFormatError) as info:
        read_chat_jsonl(path)
    by_line = {n for n, _ in info.value.errors}
    assert by_line == {2, 3, 4, 5, 6, 7}
    text = str(info.value)
    for needle in (
        "line 2: not valid JSON",
        "'robot' is not one of",
        "no assistant turn",
        "content is empty",
        "has no 'role'",
        "weight must be 0 or 1",
    ):
        assert needle in text


def test_shipped_sample_data_is_valid():
    train = read_chat_jsonl("data/support_chat/train.jsonl")
    valid = read_chat_jsonl("data/support_chat/valid.jsonl", final_assistant=True)
    assert len(train) >= 300 and len(valid) >= 60


def shipped_rows(tok, max_seq_len=256):
    import pyarrow as pa

    lines = Path("data/support_chat/train.jsonl").read_text().splitlines()
    rows = [check_line(tok, n, text, max_seq_len) for n, text in enumerate(lines, start=1)]
    assert not [r for r in rows if r["error"]]
    return pa.Table.from_pylist(rows)


def test_packing_fits_every_example_once_with_positions_that_restart(tok):
    table = shipped_rows(tok)
    units = to_units(table, packing=True, max_seq_len=256, mix={}, seed=1).to_pylist()
    assert sum(u["n_examples"] for u in units) == table.num_rows
    assert len(units) < table.num_rows / 2 and all(u["n_tokens"] <= 256 for u in units)
    trained = sum(u["n_trained"] for u in units)
    # each example's first token (a system/user token) is never a target anyway
    assert trained == sum(table.column("n_trained").to_pylist())
    u = next(u for u in units if u["n_examples"] >= 3)
    starts = [i for i, p in enumerate(u["position_ids"]) if p == 0]
    assert len(starts) == u["n_examples"] and starts[0] == 0
    assert all(u["labels"][i] == IGNORE for i in starts)
    single = to_units(table, packing=False, max_seq_len=256, mix={}, seed=1)
    assert single.num_rows == table.num_rows
    assert to_units(table, packing=True, max_seq_len=256, mix={}, seed=1).to_pylist() == units


def test_a_packed_row_loses_exactly_the_sum_of_its_examples_losses(tok, tiny_model_dir):
    """Positions restart per example and transformers masks attention block-diagonally, so a
    packed row is several independent sequences: its summed token loss equals the sum of its
    examples' losses computed one at a time. Naive packing (one sequence) does not."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    model.config.use_cache = False  # as in training: a cache turns packed-sequence masks off
    rows = [
        check_line(tok, i, line(q, a), 256)
        for i, (q, a) in enumerate(
            [
                ("What is the return window?", "Returns are accepted for 45 days."),
                ("Do you ship abroad?", "Yes, to 30 countries."),
                ("Phone number?", "Call 555-0147, 8am to 6pm."),
            ],
            start=1,
        )
    ]
    examples = [(r["input_ids"], r["labels"]) for r in rows]

    def summed_loss(batch):
        with torch.no_grad():
            return model(**batch, num_items_in_batch=1).loss.item()

    alone = sum(summed_loss(collate([make_unit([ex], 1)], pad_id=0)) for ex in examples)
    packed_batch = collate([make_unit(examples, 1)], pad_id=0)
    packed = summed_loss(packed_batch)
    assert packed == pytest.approx(alone, rel=1e-5, abs=1e-4)
    assert targets(packed_batch) == sum(
        targets(collate([make_unit([ex], 1)], 0)) for ex in examples
    )
    # the same row as one sequence (continuous positions, full causal attention) differs
    naive = dict(packed_batch)
    naive["position_ids"] = torch.arange(naive["input_ids"].shape[1])[None]
    naive["attention_mask"] = torch.ones_like(naive["input_ids"])
    assert abs(summed_loss(naive) - alone) > 1e-3


def test_padding_never_changes_a_row_s_loss(tok, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    model.config.use_cache = False  # as in training: a cache turns packed-sequence masks off
    short = make_unit(
        [(r["input_ids"], r["labels"]) for r in [check_line(tok, 1, line("hi", "hello"), 64)]], 1
    )
    long = make_unit(
        [
            (r["input_ids"], r["labels"])
            for r in [
                check_line(tok, 2, line("a much longer question " * 3, "and its answer"), 128)
            ]
        ],
        2,
    )
    with torch.no_grad():
        padded = model(**collate([short, long], 0), num_items_in_batch=1).loss.item()
        each = sum(
            model(**collate([u], 0), num_items_in_batch=1).loss.item() for u in (short, long)
        )
    assert padded == pytest.approx(each, rel=1e-5, abs=1e-4)


def epochs_of(units, seed):
    """A stand-in for Ray Data's seeded per-epoch order (the real one is tested in
    tests/jobs/train/test_feed.py)."""

    def epoch_units(rank, world):
        def gen(epoch):
            order = np.random.default_rng([seed, epoch]).permutation(units)
            for i, u in enumerate(order):
                if i % world == rank:
                    yield {"id": int(u)}

        return gen

    return epoch_units


def test_a_resumed_run_continues_with_the_same_data():
    s = Schedule(n_units=22, micro_batch=2, grad_accum=2, world_size=2, seed=3)
    assert s.global_batch == 8 and s.steps_per_epoch == 2 and s.total_steps(2.5, None) == 5
    epoch_units = epochs_of(22, seed=3)
    for rank in range(2):
        whole = list(s.step_batches(epoch_units(rank, 2), 0, 7))
        assert len(whole) == 7 and all(len(step) == 2 and len(step[0]) == 2 for step in whole)
        for start in (1, 2, 3, 6):
            assert list(s.step_batches(epoch_units(rank, 2), start, 7)) == whole[start:]
    # in one epoch the ranks see disjoint units, and two epochs see different orders
    ids = {
        rank: [
            u["id"] for st in s.step_batches(epoch_units(rank, 2), 0, 2) for mb in st for u in mb
        ]
        for rank in range(2)
    }
    assert not set(ids[0]) & set(ids[1]) and len(ids[0]) + len(ids[1]) == 16
    first = [u["id"] for st in s.step_batches(epoch_units(0, 2), 0, 2) for mb in st for u in mb]
    second = [u["id"] for st in s.step_batches(epoch_units(0, 2), 2, 4) for mb in st for u in mb]
    assert first != second


def test_collate_pads_right_without_targets_and_continues_positions(tok):
    a = make_unit(
        [
            (r["input_ids"], r["labels"])
            for r in [check_line(tok, 1, line("hi", "hello there"), 128)]
        ],
        1,
    )
    b = make_unit(
        [
            (r["input_ids"], r["labels"])
            for r in [check_line(tok, 2, line("a much longer question", "and answer"), 128)]
        ],
        2,
    )
    batch = collate([a, b], pad_id=0)
    short, n = (0, a["n_tokens"]) if a["n_tokens"] < b["n_tokens"] else (1, b["n_tokens"])
    assert (batch["labels"][short, n:] == IGNORE).all() and (
        batch["input_ids"][short, n:] == 0
    ).all()
    assert batch["position_ids"][short, n] == batch["position_ids"][short, n - 1] + 1
    assert "attention_mask" not in batch
