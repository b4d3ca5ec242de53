import json

import pytest
from transformers import AutoTokenizer

from cluster.chat import ChatFormatError, Example, read_chat_jsonl
from jobs.train.data import (
    IGNORE,
    Sampler,
    collate,
    pack,
    token_stats,
    tokenize_all,
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


def test_too_long_and_nothing_to_learn_are_reported_by_line(tok):
    long = Example(
        [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}], {}, 7
    )
    silent = Example(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0}],
        {},
        9,
    )
    ok, errors = tokenize_all(tok, [long, silent, conv("a", "b")], max_seq_len=64)
    assert len(ok) == 1
    assert [n for n, _ in errors] == [7, 9]
    assert "longer than data.max_seq_len=64" in errors[0][1]
    assert token_stats(ok)["examples"] == 1


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


def test_packing_bins_fit_and_cover_everything(tok):
    items, _ = tokenize_all(tok, read_chat_jsonl("data/support_chat/train.jsonl"), 256)
    bins = pack(items, 256, seed=1)
    assert sorted(i for b in bins for i in b) == list(range(len(items)))
    assert all(sum(items[i].n_tokens for i in b) <= 256 for b in bins)
    assert len(bins) < len(items) / 2
    batch = collate(items, bins[:2], pad_id=0)
    assert batch["input_ids"].shape[0] == 2 and batch["input_ids"].shape[1] <= 256


def test_sampler_is_a_function_of_the_step():
    s = Sampler(n_units=10, micro_batch=2, grad_accum=2, world_size=2, seed=3)
    assert s.global_batch == 8 and s.total_steps(epochs=2, max_steps=None) == 3
    first = [s.micro_batches(step, r) for step in range(5) for r in range(2)]
    again = Sampler(10, 2, 2, 2, 3)
    assert [again.micro_batches(step, r) for step in range(5) for r in range(2)] == first
    epoch0 = [u for r in range(2) for mb in s.micro_batches(0, r) for u in mb]
    epoch0 += [u for r in range(2) for mb in s.micro_batches(1, r) for u in mb][:2]
    assert sorted(epoch0) == list(range(10))  # one epoch sees every unit once


def test_collate_pads_right_and_masks_labels(tok):
    items, _ = tokenize_all(
        tok, [conv("hi", "hello there"), conv("a much longer question", "and answer")], 128
    )
    batch = collate(items, None, pad_id=0)
    short = min(range(2), key=lambda i: items[i].n_tokens)
    n = items[short].n_tokens
    assert batch["attention_mask"][short, n:].sum() == 0
    assert (batch["labels"][short, n:] == IGNORE).all()
