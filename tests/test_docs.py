"""The generated reference is current, and the README keeps its two commands."""

import re
import subprocess
import sys

from tests.conftest import REPO


def test_reference_is_up_to_date():
    proc = subprocess.run(
        [sys.executable, "docs/reference.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def commands(block: str) -> list[str]:
    """The shell commands of a block: lines without their comments, blank ones dropped."""
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    text = (REPO / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert commands(block) == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert commands(ci)[-1] == "make test"  # the README's command, unchanged, last
    assert not [c for c in commands(ci) if c.startswith("make") and c != "make test"]
