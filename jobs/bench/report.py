"""``bench.json``, ``bench.md`` and the charts: latency and throughput against concurrency,
and the replica count over time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cluster.atomic import replacing, write_text
from cluster.latency import DEFINITION


def _save(fig: Any, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with replacing(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def charts(result: dict[str, Any], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result["levels"]
    conc = [lv["concurrency"] for lv in levels]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label, style in (("e2e_s", "end-to-end", "-o"), ("ttft_s", "TTFT", "--s")):
        for q, alpha in (("p50", 1.0), ("p95", 0.5)):
            vals = [lv[key].get(q) for lv in levels]
            a.plot(conc, vals, style, alpha=alpha, label=f"{label} {q}")
    a.set_xscale("log", base=2)
    a.set_xlabel("concurrent users")
    a.set_ylabel("seconds")
    a.set_title("latency (streamed end-to-end) and TTFT")
    a.legend(fontsize=8)
    b.plot(conc, [lv["output_token_throughput"] for lv in levels], "-o", color="#2ca02c")
    b.set_xscale("log", base=2)
    b.set_xlabel("concurrent users")
    b.set_ylabel("output tokens / s")
    b.set_title("throughput")
    fig.suptitle(f"{result['model']} at {result['url']}", fontsize=10)
    _save(fig, folder / "bench.png")
    names = ["bench.png"]
    timeline = result.get("replicas_timeline") or []
    if timeline:
        fig, ax = plt.subplots(figsize=(10, 3))
        t0 = timeline[0]["t"]
        ax.step(
            [p["t"] - t0 for p in timeline],
            [p["running"] for p in timeline],
            where="post",
            label="running replicas",
        )
        ax.step(
            [p["t"] - t0 for p in timeline],
            [p.get("target") or 0 for p in timeline],
            where="post",
            linestyle="--",
            alpha=0.6,
            label="target",
        )
        for lv in levels:
            ax.axvspan(lv["start"] - t0, lv["start"] - t0 + lv["duration_s"], alpha=0.08)
            ax.text(lv["start"] - t0, 0.1, f"c={lv['concurrency']}", fontsize=8)
        ax.set_xlabel("seconds")
        ax.set_ylabel("replicas")
        ax.set_title("replicas under load (shaded: load at each concurrency)")
        ax.legend(fontsize=8)
        _save(fig, folder / "replicas.png")
        names.append("replicas.png")
    return names


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Serving benchmark: {result['model']}",
        "",
        f"{result['created_at']} · {result['url']} · {result['requests']} requests per "
        f"level · max_tokens {result['max_tokens']}"
        + (f" · engine in {result['engine_dtype']}" if result.get("engine_dtype") else ""),
        "",
        f"Latency is the {DEFINITION}; TTFT (queue + prefill) and TPOT (one decode step) are "
        "its parts.",
        "",
        "| concurrency | ok/err | req/s | output tok/s | latency p50/p95 s | TTFT p50/p95 ms | "
        "TPOT p50 ms | ITL p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}"

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for lv in result["levels"]:
        lines.append(
            f"| {lv['concurrency']} | {lv['completed']}/{lv['errors']} | "
            f"{lv['request_throughput']:.2f} | {lv['output_token_throughput']:.1f} | "
            f"{s(lv['e2e_s']['p50'])}/{s(lv['e2e_s'].get('p95'))} | "
            f"{ms(lv['ttft_s']['p50'])}/{ms(lv['ttft_s'].get('p95'))} | "
            f"{ms(lv['tpot_s']['p50'])} | {ms(lv['itl_s']['p50'])} |"
        )
    if result.get("scaling"):
        lines += ["", result["scaling"]]
    if result.get("replicas_summary"):
        lines += ["", result["replicas_summary"]]
    lines += ["", "![latency and throughput](bench.png)"]
    if result.get("replicas_timeline"):
        lines += ["", "![replicas over time](replicas.png)"]
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result["charts"] = charts(result, folder)
    for name, text in (
        ("bench.json", json.dumps(result, indent=2) + "\n"),
        ("bench.md", markdown(result)),
    ):
        write_text(folder / name, text)
