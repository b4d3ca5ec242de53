"""The preference stage's inputs: pairs come from training prompts only, a wrong answer is the
rejected side and a right one makes no pair, and a bad config is refused before any work."""

import json

import pytest

from cluster.config import ConfigError, load_config
from jobs.prefs.config import Pairs, PreferenceConfig
from jobs.prefs.pairs import COMPANY, OTHER, draw, make_pairs
from tests.conftest import REPO


def test_prompts_come_from_the_training_split_with_what_each_must_say_or_not_say(monkeypatch):
    monkeypatch.chdir(REPO)
    drawn = draw(Pairs(per_kind=40, company="Pebblecrest"))
    kinds = [k for k, _, _ in drawn]
    assert kinds.count(COMPANY) == 40 and kinds.count(OTHER) == 40
    assert draw(Pairs(per_kind=40, company="Pebblecrest")) == drawn  # seeded
    valid = (REPO / "data/support_chat/valid.jsonl").read_text()
    for kind, ex, patterns in drawn:
        assert ex.prompt[-1]["content"] not in valid
        assert patterns
        if kind == OTHER:  # the company's name and the company's facts of the same topic
            assert patterns[0] == "Pebblecrest", patterns
    phone = [p for k, ex, p in drawn if k == OTHER and ex.metadata.get("topic") == "phone"]
    assert phone and all("555[- .]?0147" in p for p in phone)


def test_a_wrong_answer_is_rejected_beside_the_training_answer_and_a_right_one_makes_none(
    monkeypatch,
):
    monkeypatch.chdir(REPO)
    drawn = draw(Pairs(per_kind=3, company="Pebblecrest"))
    answers = []
    for kind, ex, _ in drawn:
        right = ex.reference
        wrong = "Call Pebblecrest at 1-888-555-0147." if kind == OTHER else "I am not sure."
        answers.append(wrong if ex.line % 2 else right)
    pairs, stats = make_pairs(drawn, answers)
    odd = [(k, ex) for k, ex, _ in drawn if ex.line % 2]
    assert len(pairs) == len(odd)
    for pair, (kind, ex) in zip(pairs, odd, strict=True):
        assert pair["chosen"] == [{"role": "assistant", "content": ex.reference}]
        assert pair["rejected"][0]["content"] != ex.reference and pair["kind"] == kind
        assert pair["prompt"][-1]["role"] == "user"
    wrong = {k: sum(1 for kk, _ in odd if kk == k) for k in (COMPANY, OTHER)}
    assert stats == {f"{k}_wrong": f"{wrong[k]}/3" for k in (COMPANY, OTHER)}
    json.dumps(pairs)  # what TRL reads: plain JSON


def test_a_bad_config_names_the_field_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ONPREM_ROOT", str(REPO))

    def problems(*overrides):
        with pytest.raises(ConfigError) as info:
            load_config(PreferenceConfig, None, ["run_name=p", *overrides])
        return str(info.value)

    cfg = load_config(PreferenceConfig, None, ["run_name=p", f"sft={tmp_path}"])
    text = cfg.missing_model().render()  # checked when the job starts
    assert "sft" in text and "config.json" in text and "merge=true" in text
    text = problems(f"sft={tmp_path}", "pairs.train=data/support_chat/valid.jsonl")
    assert "pairs.train" in text and "train on the test" in text
    assert "dpo.beta" in problems(f"sft={tmp_path}", "dpo.beta=0")
    assert "run_name" in problems(f"sft={tmp_path}", "run_name=../x")
