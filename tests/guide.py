"""Reading ``docs/masterclass.md`` as a script: its ```bash runnable``` blocks, the expected
output shown after each, and whether a run's output matches that excerpt. Pure text, used by
the fast checks of the guide (tests/test_masterclass.py) and by the run of it
(tests/test_story.py)."""

from __future__ import annotations

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "masterclass.md"
MARK = "### masterclass block"  # what the script prints before each block
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def runnable_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash runnable\n(.*?)^```", text, flags=re.S | re.M)


def excerpts(text: str) -> list[str | None]:
    """For each runnable block, the ```text block that follows it before the next command
    block or section (None where there is none)."""
    after = re.split(r"^```bash runnable\n.*?^```\n", text, flags=re.S | re.M)[1:]
    out: list[str | None] = []
    for chunk in after:
        found = re.search(r"^```text\n(.*?)^```", chunk, flags=re.S | re.M)
        nxt = re.search(r"^(?:## |```bash)", chunk, flags=re.M)
        ahead = found and (nxt is None or found.start() < nxt.start())
        out.append(found.group(1) if ahead else None)
    return out


def script(blocks: list[str], first: int = 1) -> str:
    """One bash script running ``blocks`` in order, stopping at the first failure, with a
    marker line before each (numbered from ``first``)."""
    body = "\n".join(
        f'echo "{MARK} {i} at $SECONDS s"\n{block}' for i, block in enumerate(blocks, start=first)
    )
    return "set -euo pipefail\n" + body


def split_output(output: str) -> dict[int, str]:
    """A script's output per block number."""
    parts = re.split(rf"^{MARK} (\d+) at \d+ s$", ANSI.sub("", output), flags=re.M)
    return {int(n): text for n, text in zip(parts[1::2], parts[2::2], strict=True)}


def line_pattern(line: str) -> re.Pattern[str]:
    """An excerpt line as a pattern: "…" stands for anything (the spaces around it too), a run
    of spaces for any run (table columns widen with their content), the rest is literal."""
    pieces = [
        r"\s+".join(re.escape(word) for word in piece.strip().split(" "))
        for piece in re.sub(r" +", " ", line.strip()).split("…")
    ]
    return re.compile(".*?".join(pieces))


def mismatches(excerpt: str, output: str) -> list[str]:
    """The excerpt's lines that the output does not show, in order: each line (with "…" as a
    wildcard) must match a line of the output after the one the previous line matched."""
    lines = [x.rstrip() for x in output.splitlines()]
    missing, at = [], 0
    for want in excerpt.splitlines():
        if not want.strip().strip("…").strip():
            continue
        pattern = line_pattern(want)
        hit = next((i for i in range(at, len(lines)) if pattern.search(lines[i])), None)
        if hit is None:
            missing.append(want)
        else:
            at = hit + 1
    return missing
