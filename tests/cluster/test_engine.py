"""The continuous-batching engine on the tiny random model (unit tier: no Ray)."""

import pytest
import torch

from cluster.inference.engine import BackgroundEngine, Engine, Request, SamplingParams
from cluster.inference.loading import load_for_inference


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return load_for_inference(str(tiny_model_dir))


def engine(lm, **kw):
    return Engine(
        lm.model, lm.tokenizer, eos_ids=kw.pop("eos_ids", []), context_len=lm.context_len, **kw
    )


def prompt(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def reference_greedy(lm, ids, n):
    """Plain greedy decoding, one sequence, no cache tricks: the ground truth."""
    seq = torch.tensor([ids])
    with torch.inference_mode():
        for _ in range(n):
            nxt = lm.model(input_ids=seq).logits[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    return seq[0, len(ids) :].tolist()


PROMPTS = [
    "hello world",
    "the return policy is",
    "a",
    "shipping to canada costs money and",
    "what are the support hours on saturday",
]


def test_batched_continuous_greedy_equals_one_by_one(lm):
    eng = engine(lm, max_batch_size=3)  # fewer slots than requests: later ones join mid-run
    reqs = [Request(prompt(lm, p), SamplingParams(max_tokens=6 + i)) for i, p in enumerate(PROMPTS)]
    eng.generate(reqs)
    for r in reqs:
        assert r.out_ids == reference_greedy(lm, r.prompt_ids, r.params.max_tokens)
        assert r.finish_reason == "length" and r.ttft_s is not None
    assert not eng.running and eng._cache is None


def test_late_arrivals_join_a_running_batch(lm):
    eng = engine(lm, max_batch_size=8)
    first = eng.submit(Request(prompt(lm, PROMPTS[0]), SamplingParams(max_tokens=12)))
    for _ in range(4):
        eng.step()
    late = eng.submit(Request(prompt(lm, PROMPTS[3]), SamplingParams(max_tokens=5)))
    eng.step()
    assert len(eng.running) == 2  # the late one shares the forward pass
    while eng.has_work:
        eng.step()
    assert first.out_ids == reference_greedy(lm, first.prompt_ids, 12)
    assert late.out_ids == reference_greedy(lm, late.prompt_ids, 5)


def test_eos_and_stop_strings_end_a_sequence(lm):
    ids = prompt(lm, PROMPTS[1])
    expected = reference_greedy(lm, ids, 8)
    cut = next((i for i in range(1, 8) if expected[i] not in expected[:i]), 0)
    eng = engine(lm, eos_ids=[expected[cut]])
    r = eng.generate([Request(ids, SamplingParams(max_tokens=8))])[0]
    assert r.finish_reason == "stop" and r.out_ids == expected[:cut]
    full = lm.tokenizer.decode(expected, skip_special_tokens=True)
    stop = full[len(full) // 2 :][:2]
    if stop.strip():
        eng = engine(lm)
        r = eng.generate([Request(ids, SamplingParams(max_tokens=8, stop=[stop]))])[0]
        assert r.finish_reason == "stop" and stop not in r.text


def test_streamed_deltas_add_up_to_the_text(lm):
    deltas = []
    eng = engine(lm)
    r = Request(
        prompt(lm, PROMPTS[2]),
        SamplingParams(max_tokens=10),
        on_event=lambda req, d: deltas.append(d),
    )
    eng.generate([r])
    assert "".join(deltas) == r.text and deltas[-1] == ""


def test_seeded_sampling_is_reproducible(lm):
    ids = prompt(lm, PROMPTS[4])
    outs = []
    for _ in range(2):
        eng = engine(lm)
        outs.append(
            eng.generate(
                [Request(ids, SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=7))]
            )[0].out_ids
        )
    assert outs[0] == outs[1]


def test_too_long_prompt_and_unknown_adapter_are_refused(lm):
    eng = engine(lm)
    with pytest.raises(ValueError, match="longer than the model's context"):
        eng.submit(Request([1] * lm.context_len, SamplingParams(max_tokens=5)))
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        eng.submit(Request([1, 2], adapter="nope"))


def test_cancelled_request_leaves_the_batch(lm):
    eng = engine(lm)
    keep = eng.submit(Request(prompt(lm, PROMPTS[0]), SamplingParams(max_tokens=6)))
    drop = eng.submit(Request(prompt(lm, PROMPTS[1]), SamplingParams(max_tokens=50)))
    eng.step()
    drop.cancelled = True
    while eng.has_work:
        eng.step()
    assert drop.finish_reason == "cancelled" and keep.finish_reason == "length"


def test_background_engine_survives_a_failing_step(lm):
    eng = engine(lm)
    bg = BackgroundEngine(eng)
    try:
        real = eng._decode
        eng._decode = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
        bad = bg.submit(Request(prompt(lm, "x"), SamplingParams(max_tokens=3)))
        while not bad.done:
            pass
        assert bad.finish_reason == "error" and "boom" in bad.error
        eng._decode = real
        good = bg.submit(Request(prompt(lm, "y"), SamplingParams(max_tokens=3)))
        while not good.done:
            pass
        assert good.finish_reason == "length"
    finally:
        bg.stop()


def test_stop_none_is_no_stop(lm):
    eng = engine(lm)
    r = eng.generate([Request(prompt(lm, "x"), SamplingParams(max_tokens=3, stop=None))])[0]
    assert r.finish_reason == "length"


def test_max_tokens_holds_even_mid_character(lm):
    """Byte-level tokens can end half-way through a UTF-8 character; the limit still holds."""
    eng = engine(lm)
    reqs = [
        Request(prompt(lm, p), SamplingParams(max_tokens=n, temperature=1.0, seed=s))
        for s in range(6)
        for p, n in zip(PROMPTS, (1, 2, 3, 5, 8), strict=True)
    ]
    eng.generate(reqs)
    assert all(len(r.out_ids) <= r.params.max_tokens for r in reqs)
    assert not any(r.text.endswith("\ufffd") for r in reqs)  # no half character at the end


def test_shared_prefixes_are_computed_once_and_change_no_answer(lm):
    from cluster.chat import prompt_tokens

    system = {"role": "system", "content": "you answer questions about the return policy"}
    convs = [[system, {"role": "user", "content": p}] for p in PROMPTS]
    convs.append([{"role": "user", "content": "no system turn here"}])
    eng = engine(lm, max_batch_size=3)  # later requests join mid-run and hit the cache
    reqs = []
    for conv in convs:
        ids, prefix_len = prompt_tokens(lm.tokenizer, conv)
        reqs.append(Request(ids, SamplingParams(max_tokens=6), prefix_len=prefix_len))
    assert all(r.prefix_len > 0 for r in reqs[:-1]) and reqs[-1].prefix_len == 0
    plain = lm.tokenizer(
        lm.tokenizer.apply_chat_template(convs[0], add_generation_prompt=True, tokenize=False),
        add_special_tokens=False,
    )["input_ids"]
    assert reqs[0].prompt_ids == plain  # the ids are the template's, the prefix only a mark
    eng.generate(reqs)
    for r in reqs:
        assert r.out_ids == reference_greedy(lm, r.prompt_ids, 6)
    assert eng.prefix_misses == 1 and eng.prefix_hits >= 1  # 3 admissions, one computation
    assert len(eng._prefixes) == 1
