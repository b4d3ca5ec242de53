"""The generated reference is current, and the README keeps its two commands."""

import subprocess
import sys

from tests.conftest import REPO


def test_reference_is_up_to_date():
    proc = subprocess.run(
        [sys.executable, "docs/reference.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_has_exactly_the_two_setup_commands():
    text = (REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
