"""EvalConfig: the report's name is one folder under reports/eval/, never a path."""

import pytest

from cluster.config import ConfigError, validate
from jobs.eval.config import EvalConfig

BASE = {"eval_set": "data/support_chat/valid.jsonl", "candidates": [{"name": "b", "model": "m"}]}


@pytest.mark.parametrize("name", ["../x", "a/b", "/tmp/x", ".hidden", "a..b", ""])
def test_the_report_name_must_be_a_folder_name(name):
    with pytest.raises(ConfigError) as err:
        validate(EvalConfig, {**BASE, "name": name}, "eval.yaml")
    assert [p.field for p in err.value.problems] == ["name"]
    assert "names a folder" in str(err.value)


def test_a_plain_name_is_kept():
    assert validate(EvalConfig, {**BASE, "name": "smollm2-support"}, "e").name == "smollm2-support"
