from pathlib import Path

import pytest
from pydantic import Field

from cluster.config import (
    ConfigError,
    JobConfig,
    Problem,
    args_to_overrides,
    cli_config,
    load_config,
    parse_overrides,
)


class Inner(JobConfig):
    lr: float = Field(default=1e-3, gt=0, description="learning rate")
    steps: int = Field(default=10, ge=1)


class Demo(JobConfig):
    name: str = Field(description="run name")
    train: Inner = Inner()
    verbose: bool = False

    def problems(self) -> list[Problem]:
        if self.name == "bad" and self.train.steps > 5:
            return [Problem("train.steps", self.train.steps, "too many for 'bad'", "use <= 5")]
        return []


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_overrides_are_nested_and_typed():
    assert parse_overrides(["a.b=1", "c=[x, y]", "d=true", "e="]) == {
        "a": {"b": 1},
        "c": ["x", "y"],
        "d": True,
        "e": "",
    }


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="is not key=value"):
        parse_overrides(["lr"])


def test_yaml_plus_overrides(tmp_path):
    cfg = load_config(Demo, write(tmp_path, "name: x\ntrain: {lr: 0.1}\n"), ["train.steps=3"])
    assert (cfg.name, cfg.train.lr, cfg.train.steps) == ("x", 0.1, 3)


def test_every_problem_is_reported_together_with_field_value_and_fix(tmp_path):
    path = write(tmp_path, "nme: x\ntrain: {lr: -1, stepz: 2}\n")
    with pytest.raises(ConfigError) as info:
        load_config(Demo, path, ["verbose=maybe"])
    err = info.value
    fields = {p.field for p in err.problems}
    assert {"nme", "name", "train.lr", "train.stepz", "verbose"} <= fields
    text = str(err)
    assert "did you mean 'name'" in text and "did you mean 'steps'" in text
    assert "train.lr = -1" in text and "learning rate" in text
    assert text.startswith(f"{path}: 5 problems")


def test_cross_field_checks_run_after_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"train.steps = 10: too many for 'bad'. Fix: use <= 5"):
        load_config(Demo, None, ["name=bad"])


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match="line 2"):
        load_config(Demo, write(tmp_path, "name: x\ntrain: [unclosed\n"))


def test_missing_file_says_where_configs_live(tmp_path):
    with pytest.raises(ConfigError, match="jobs/configs"):
        load_config(Demo, tmp_path / "nope.yaml")


def test_cli_flags_are_config_fields():
    assert args_to_overrides(Demo, ["--name", "a", "--verbose", "--train.lr=0.5", "x=1"]) == [
        "name=a",
        "verbose=true",
        "train.lr=0.5",
        "x=1",
    ]


def test_cli_config_exits_2_with_the_message(capsys):
    with pytest.raises(SystemExit) as info:
        cli_config(Demo, "demo", ["--nam", "x"])
    assert info.value.code == 2
    assert "nam = 'x': is not a known key" in capsys.readouterr().err
