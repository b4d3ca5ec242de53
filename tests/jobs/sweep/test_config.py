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


def test_early_stopping_must_fall_on_an_evaluated_step_before_the_last(selection, monkeypatch):
    monkeypatch.chdir(REPO)
    text = problems(selection, "early_stop={at_step: 6}")  # tiny_test runs 6 steps
    assert "early_stop.at_step" in text and "not before the last step" in text and "e.g. 3" in text
    text = problems(selection, "early_stop={at_step: 3}", "trial_overrides={train.eval_every: 2}")
    assert "train.eval_every: 2" in text and "train.eval_every: 3" in text  # the fix
    text = problems(selection, "early_stop={at_step: 3, metric: eval_loss, mode: up}")
    assert "early_stop.mode" in text
    ok = config(selection, "early_stop={at_step: 3}", "trial_overrides={train.eval_every: 3}")
    assert ok.early_stop.at_step == 3


def test_tune_runs_the_trials_a_few_at_a_time_and_asha_has_one_rung(selection, monkeypatch):
    """Tune ignores max_concurrent_trials beside a BasicVariantGenerator (a sweep once started
    all 12 trials at once): the limit is the generator's own. ASHA decides once, at at_step."""
    from ray.tune.schedulers import TrialScheduler

    from jobs.sweep.run import tune_config

    monkeypatch.chdir(REPO)
    cfg = config(selection, "early_stop={at_step: 3}", "trial_overrides={train.eval_every: 3}")
    tc = tune_config(cfg, 1)
    assert tc.search_alg.max_concurrent == 1
    asha = tc.scheduler

    class Trial:
        def __init__(self, i):
            self.trial_id = f"t{i}"

    def at(trial, step, loss):
        return asha.on_trial_result(None, trial, {"step": step, "eval_loss": loss})

    a, b, c = Trial(1), Trial(2), Trial(3)
    for t in (a, b, c):
        asha.on_trial_add(None, t)
    assert at(a, 3, 1.0) == TrialScheduler.CONTINUE  # the first at the rung goes on
    assert at(b, 3, 2.0) == TrialScheduler.STOP  # behind the median: stopped
    assert at(c, 3, 0.5) == TrialScheduler.CONTINUE
    assert at(a, 6, 9.0) == TrialScheduler.CONTINUE  # past the rung a trial runs to its end
    assert (
        config(selection).early_stop is None and tune_config(config(selection), 2).scheduler is None
    )
