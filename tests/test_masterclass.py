"""The text of ``docs/masterclass.md`` (fast): every part has runnable steps, each says how
long it takes and what it prints. The guide's run is tests/test_story.py."""

import re

from tests.guide import GUIDE, excerpts, mismatches, runnable_blocks, script, split_output


def test_the_guide_has_runnable_steps_for_every_part():
    blocks = runnable_blocks(GUIDE.read_text())
    assert len(blocks) >= 12
    joined = "\n".join(blocks)
    for command in (
        "python -m cluster up",
        "jobs.pull_model",
        "jobs.finetune",
        "jobs.evaluate",
        "python -m serve deploy",
        "serve.scale",
        "serve.status",
        "jobs.bench_serve",
        "jobs.cost_report",
        "render-onprem",
        "python -m cluster down",
    ):
        assert command in joined, command
    assert "python -m cluster down" in blocks[-1]  # the clean-up comes last (test_story.py)
    assert "/tmp/" not in joined  # scratch files go to the session's own folder ($WORK)


def test_every_step_says_what_it_needs_and_prints():
    text = GUIDE.read_text()
    assert "## Prerequisites" in text and "make demo-down" in text and "make install" in text
    # after each runnable block but the shell set-up: an excerpt of its output
    after_blocks = re.split(r"^```bash runnable\n.*?^```\n", text, flags=re.S | re.M)[2:]
    for i, after in enumerate(after_blocks, start=2):
        before_next = re.split(r"^(?:## |```bash)", after, flags=re.M)[0]
        assert "```text" in before_next, f"runnable block {i} shows no expected output"
        assert "minute" in before_next or "seconds" in before_next, f"block {i}: how long?"
    assert excerpts(text)[0] is None and all(excerpts(text)[1:])


def test_an_excerpt_matches_output_in_order_with_ellipses_as_wildcards():
    output = "Job 'raysubmit_42' submitted\nstep 1/6 | loss 2.1\nstep 6/6 | loss 1.2\nok\n"
    assert mismatches("Job 'raysubmit_…' submitted\n…\nstep 6/6 | loss …\nok", output) == []
    # out of order, or not printed at all: named
    assert mismatches("step 6/6 | loss …\nstep 1/6 | loss …", output) == ["step 1/6 | loss …"]
    assert mismatches("Job '…' failed", output) == ["Job '…' failed"]
    # table columns: any run of spaces matches any other
    assert mismatches("node  state   CPU", "  node   state CPU\n") == []


def test_a_script_marks_each_block_and_its_output_splits_back():
    text = script(["echo a", "echo b"], first=3)
    assert text.startswith("set -euo pipefail\n") and 'block 4 at $SECONDS s"\necho b' in text
    out = "### masterclass block 3 at 0 s\na\n### masterclass block 4 at 2 s\nb\n"
    assert split_output(out) == {3: "\na\n", 4: "\nb\n"}
