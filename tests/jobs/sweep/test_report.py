"""A trial's score (the smallest margin to the verdict's thresholds) and the sweep's report:
the table, the trade-off chart and the best trial as a runnable fine-tune config (no Ray)."""

import pandas as pd
import pytest
import yaml

from cluster.config import load_config
from jobs.sweep.config import TuneConfig
from jobs.sweep.report import write
from jobs.sweep.score import margins
from jobs.train.config import FinetuneConfig
from tests.conftest import REPO


def check(threshold, limit, mean, ok):
    return {"threshold": threshold, "limit": limit, "measured": {"mean": mean}, "pass": ok}


def test_the_score_is_the_smallest_margin_and_is_non_negative_exactly_when_all_pass():
    passing = margins(
        {
            "checks": [
                check("facts_min", 0.8, 0.83, True),
                check("wrong_facts_max", 0.1, 0.05, True),
                check("retention_drop_max", 0.05, 0.04, True),
                check("leak_free_drop_max", 0.05, 0.0, True),
            ],
            "pass": True,
        }
    )
    assert passing["score"] == pytest.approx(0.01)  # retention: 0.05 - 0.04
    assert passing["facts"] == 0.83 and passing["pass"] is True
    failing = margins(
        {
            "checks": [
                check("facts_min", 0.8, 0.9, True),
                check("leak_free_drop_max", 0.05, 0.08, False),
            ],
            "pass": False,
        }
    )
    assert failing["score"] == pytest.approx(-0.03) and failing["pass"] is False
    unmeasured = margins({"checks": [check("facts_min", 0.8, None, False)], "pass": False})
    assert unmeasured["score"] == -1.0


def test_the_report_ranks_trials_draws_the_trade_off_and_writes_the_best_recipe(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(REPO)
    select = tmp_path / "select.jsonl"
    select.write_text(
        '{"messages": [{"role": "user", "content": "Colour of snow?"}, '
        '{"role": "assistant", "content": "White."}], "metadata": {"kind": "general"}}\n'
    )
    cfg = load_config(
        TuneConfig,
        None,
        [
            "name=t",
            "finetune=jobs/configs/finetune/tiny_test.yaml",
            f"selection.eval_set={select}",
            "space={optim.lr: {grid: [0.001, 0.003]}, lora.r: {choice: [8, 16]}}",
        ],
    )
    table = pd.DataFrame(
        [
            {
                "trial": "a",
                "param:optim.lr": 0.001,
                "param:lora.r": 8,
                "status": "DONE",
                "score": -0.02,
                "pass": False,
                "facts": 0.9,
                "wrong_facts": 0.05,
                "retention_drop": 0.07,
                "leak_free_drop": 0.0,
            },
            {
                "trial": "b",
                "param:optim.lr": 0.003,
                "param:lora.r": 16,
                "status": "DONE",
                "score": 0.01,
                "pass": True,
                "facts": 0.81,
                "wrong_facts": 0.02,
                "retention_drop": 0.01,
                "leak_free_drop": 0.04,
            },
            {
                "trial": "c",
                "param:optim.lr": 0.003,
                "param:lora.r": 8,
                "status": "ERROR",
                "score": None,
                "pass": None,
                "facts": None,
                "wrong_facts": None,
                "retention_drop": None,
                "leak_free_drop": None,
            },
        ]
    )
    folder = tmp_path / "reports" / "tune" / "t"
    best = write(cfg, table, folder)
    assert best["trial"] == "b"
    md = (folder / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "trial" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| b", "| a", "| c"]  # best first, failed last
    assert "Best: **b**" in md and "passes every check" in md
    assert (folder / "tradeoff.png").stat().st_size > 10_000
    assert len(pd.read_csv(folder / "trials.csv")) == 3
    recipe = yaml.safe_load((folder / "best.yaml").read_text())
    ft = FinetuneConfig.model_validate(recipe)
    assert (ft.optim.lr, ft.lora.r) == (0.003, 16)
    assert "python -m jobs.finetune --config" in (folder / "best.yaml").read_text()
