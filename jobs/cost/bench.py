"""Read a serving benchmark (``reports/bench/<name>/bench.json`` from ``jobs.bench_serve``) and
pick the operating point: the highest concurrency whose p95 end-to-end latency meets the SLO.

The benchmark records p50/p90/p99 (and the mean) per level. When p95 is absent it is
interpolated linearly between p90 and p99 (``p90 + (p99 - p90) * 5 / 9``): a tail percentile
between two measured ones, never below p90 nor above p99, and marked as interpolated.

    bench = load_bench(newest_bench(paths.reports_dir() / "bench"))
    point = operating_point(bench.levels, slo_s=10.0)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BenchError(ValueError):
    """A benchmark file that cannot be used; names the file and the field."""


@dataclass(frozen=True)
class Level:
    """One concurrency level of a benchmark, as the cost report uses it."""

    concurrency: int
    output_tokens_per_s: float
    requests_per_s: float
    e2e_p50_s: float
    e2e_p95_s: float
    p95_interpolated: bool
    ttft_p50_s: float | None
    completed: int
    errors: int


@dataclass(frozen=True)
class Bench:
    path: Path
    created_at: str
    model: str
    url: str
    max_tokens: int | None
    levels: list[Level]


def p95(stats: Mapping[str, Any]) -> tuple[float, bool]:
    """(p95, interpolated?) of a ``{mean, p50, p90, p99[, p95]}`` record."""
    if stats.get("p95") is not None:
        return float(stats["p95"]), False
    p90, p99 = stats.get("p90"), stats.get("p99")
    if p90 is None or p99 is None:
        raise KeyError("p90/p99")
    return float(p90) + (float(p99) - float(p90)) * (95 - 90) / (99 - 90), True


def _level(raw: Any, i: int, path: Path) -> Level:
    where = f"{path}: levels[{i}]"
    if not isinstance(raw, dict):
        raise BenchError(f"{where} is not an object")
    try:
        e2e = raw["e2e_s"]
        p95_s, interpolated = p95(e2e)
        return Level(
            concurrency=int(raw["concurrency"]),
            output_tokens_per_s=float(raw["output_token_throughput"]),
            requests_per_s=float(raw["request_throughput"]),
            e2e_p50_s=float(e2e["p50"]),
            e2e_p95_s=p95_s,
            p95_interpolated=interpolated,
            ttft_p50_s=(raw.get("ttft_s") or {}).get("p50"),
            completed=int(raw.get("completed", 0)),
            errors=int(raw.get("errors", 0)),
        )
    except KeyError as exc:
        raise BenchError(f"{where} lacks {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise BenchError(f"{where} has a non-numeric value ({exc})") from None


def load_bench(path: str | Path) -> Bench:
    """Parse a bench.json; raises BenchError naming the file and the missing field."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise BenchError(f"{path}: not valid JSON ({exc})") from None
    levels_raw = data.get("levels") if isinstance(data, dict) else None
    if not isinstance(levels_raw, list) or not levels_raw:
        raise BenchError(f"{path}: has no levels[] (is it a jobs.bench_serve bench.json?)")
    levels = [_level(lv, i, path) for i, lv in enumerate(levels_raw)]
    return Bench(
        path=path,
        created_at=str(data.get("created_at", "")),
        model=str(data.get("model", "?")),
        url=str(data.get("url", "?")),
        max_tokens=data.get("max_tokens"),
        levels=sorted(levels, key=lambda lv: lv.concurrency),
    )


def newest_bench(folder: Path) -> Path | None:
    """The most recent ``*/bench.json`` under ``folder`` (by its ``created_at``, then mtime)."""
    if not folder.is_dir():
        return None

    def stamp(p: Path) -> tuple[str, float]:
        try:
            created = str(json.loads(p.read_text()).get("created_at", ""))
        except (ValueError, AttributeError):
            created = ""
        return created, p.stat().st_mtime

    found = sorted(folder.glob("*/bench.json"), key=stamp)
    return found[-1] if found else None


def operating_point(levels: Sequence[Level], slo_s: float | None) -> Level | None:
    """The highest-concurrency level whose p95 end-to-end latency is within ``slo_s`` (and that
    completed requests); with no SLO, the level with the highest output throughput. None when no
    level meets the SLO."""
    ok = [lv for lv in levels if lv.completed > 0 or lv.output_tokens_per_s > 0]
    if slo_s is None:
        return max(ok, key=lambda lv: lv.output_tokens_per_s, default=None)
    meeting = [lv for lv in ok if lv.e2e_p95_s <= slo_s]
    return max(meeting, key=lambda lv: lv.concurrency, default=None)
