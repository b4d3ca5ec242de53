"""The sweep's config: every problem in the search space or the selection set is named with
the field and the fix before any trial starts (no Ray)."""

import json

import pytest

from cluster.config import ConfigError, load_config
from jobs.sweep.config import TuneConfig, recipe, trial_config
from tests.conftest import REPO

FINETUNE = "jobs/configs/finetune/tiny_test.yaml"


@pytest.fixture
def selection(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": "Which colour is a ripe banana, usually?"},
            {"role": "assistant", "content": "Yellow."},
        ],
        "metadata": {"kind": "general", "facts": ["yellow"]},
    }
    path = tmp_path / "select.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return str(path)


def config(selection, *overrides):
    return load_config(
        TuneConfig,
        None,
        [
            "name=t",
            f"finetune={FINETUNE}",
            f"selection.eval_set={selection}",
            "space={optim.lr: {loguniform: [1.0e-4, 1.0e-2]}}",
            *overrides,
        ],
    )


def problems(selection, *overrides):
    with pytest.raises(ConfigError) as info:
        config(selection, *overrides)
    return str(info.value)


def test_a_good_config_draws_trials_from_the_fine_tune_fields(selection, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = config(selection, "trial_overrides={train.max_steps: 3}")
    ft = trial_config(cfg, {"optim.lr": 0.002, "lora.r": 8}, "t-00001")
    assert (ft.optim.lr, ft.lora.r, ft.train.max_steps, ft.run_name) == (0.002, 8, 3, "t-00001")
    # the recipe keeps the base file's settings, not the trial-only overrides
    data = recipe(cfg, {"optim.lr": 0.002, "data.mix.contrast": 2})
    assert data["optim"]["lr"] == 0.002 and data["data"]["mix"]["contrast"] == 2
    assert data["train"]["max_steps"] == 6


def test_unknown_fields_empty_or_inverted_ranges_and_refused_values_are_named(
    selection, monkeypatch
):
    monkeypatch.chdir(REPO)
    text = problems(selection, "space={optim.lrr: {choice: [0.1]}}")
    assert "space.optim.lrr" in text and "did you mean 'lr'" in text
    text = problems(selection, "space={optim.lr: {uniform: [0.01, 0.001]}}")
    assert "space.optim.lr" in text and "empty or inverted" in text and "Fix:" in text
    assert "choice is empty" in problems(selection, "space={lora.r: {choice: []}}")
    text = problems(selection, "space={lora.r: {choice: [8, 0]}}")
    assert "space.lora.r" in text and "0" in text  # LoRA rank must be >= 1
    text = problems(selection, "space={data.mix.nope: {grid: [0, 1]}}")
    assert "metadata.kind 'nope'" in text and "contrast" in text  # names the known kinds
    assert "exactly one of" in problems(selection, "space={lora.r: {choice: [8], grid: [16]}}")


def test_the_sets_the_verdict_judges_on_are_refused_for_selection(monkeypatch):
    monkeypatch.chdir(REPO)
    for judged in ("data/support_chat/valid.jsonl", "data/support_chat/retention.jsonl"):
        text = problems(judged)
        assert "selection.eval_set" in text and "tune to the test" in text


def test_a_selection_split_sharing_questions_with_the_held_out_set_is_refused(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(REPO)
    leaked = tmp_path / "select.jsonl"
    leaked.write_text((REPO / "data/support_chat/valid.jsonl").read_text().splitlines()[1] + "\n")
    text = problems(str(leaked))
    assert "also in the judged sets" in text and "disjoint" in text


def test_designed_points_must_cover_the_space_and_fit_in_the_trials(selection, monkeypatch):
    monkeypatch.chdir(REPO)
    text = problems(selection, "points=[{lora.r: 8}]")
    assert "points.0" in text and "give exactly: optim.lr" in text
    text = problems(selection, "points=[{optim.lr: 0.001}, {optim.lr: 0.002}]", "num_samples=1")
    assert "num_samples >= 2" in text
    text = problems(selection, "points=[{optim.lr: 7}]")  # the fine-tune refuses lr > 1
    assert "points.0.optim.lr" in text
    assert config(selection, "points=[{optim.lr: 0.001}]").points == [{"optim.lr": 0.001}]
