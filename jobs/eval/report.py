"""``eval.json``, ``eval.md`` and ``eval.png``: the comparison a person reads."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

LABELS = {
    "fact": "fact accuracy",
    "similarity": "semantic similarity",
    "rougeL": "ROUGE-L",
    "ref_loss": "reference loss",
    "length_words": "answer length (words)",
    "latency_s": "latency (s)",
    "leak_free": "no borrowed facts",
}
HIGHER_IS_BETTER = {
    "fact": True,
    "similarity": True,
    "rougeL": True,
    "ref_loss": False,
    "leak_free": True,
}


def _fmt(est: dict[str, float] | None, pct: bool = False) -> str:
    if not est or est.get("mean") is None or math.isnan(est["mean"]):
        return "n/a"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    mean = est["mean"] * scale
    if "low" in est:
        return f"{mean:.1f}{unit} [{est['low'] * scale:.1f}, {est['high'] * scale:.1f}]"
    return f"{mean:.2f}{unit}"


def write_atomic(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)


def markdown(result: dict[str, Any]) -> str:
    cands = list(result["candidates"])
    sets = result["sets"]
    lines = [
        f"# Evaluation: {result['name']}",
        "",
        f"{result['created_at']} · {result['examples']['eval']} held-out examples"
        + (
            f", {result['examples'].get('retention', 0)} retention questions"
            if result["examples"].get("retention")
            else ""
        )
        + f" · greedy, max {result['generation']['max_tokens']} tokens · "
        f"{int(result['confidence'] * 100)}% bootstrap intervals",
        "",
    ]
    ev = sets["eval"]
    ref = ev["reference"]
    lines += [
        "## Against the cloud model's answers (held-out set)",
        "",
        "| metric | reference | " + " | ".join(cands) + " |",
        "|---|---|" + "---|" * len(cands),
    ]
    kinds = sorted(ref.get("by_kind") or {}, key=lambda k: k != "company")
    for kind in kinds:  # the company's facts first: what the fine-tune is for
        row = [f"fact accuracy: {kind} questions", _fmt(ref["by_kind"][kind].get("fact"), True)]
        row += [_fmt((ev[c].get("by_kind") or {}).get(kind, {}).get("fact"), True) for c in cands]
        lines.append("| " + " | ".join(row) + " |")
    for metric, pct in (
        ("fact", True),
        ("similarity", False),
        ("rougeL", False),
        ("ref_loss", False),
        ("length_words", False),
        ("latency_s", False),
    ):
        label = LABELS[metric] + (": all questions" if metric == "fact" and kinds else "")
        row = [label, _fmt(ref.get(metric), pct)]
        row += [_fmt(ev[c].get(metric), pct) for c in cands]
        lines.append("| " + " | ".join(row) + " |")
    row = ["similarity, % of reference", "100%"]
    row += [
        f"{ev[c]['similarity']['mean'] * 100:.0f}%" if ev[c].get("similarity") else "n/a"
        for c in cands
    ]
    lines.append("| " + " | ".join(row) + " |")
    if "ref_perplexity" in ev[cands[0]]:
        lines.append(
            "| reference perplexity | - | "
            + " | ".join(
                f"{ev[c]['ref_perplexity']['mean']:.2f}" if ev[c].get("ref_perplexity") else "n/a"
                for c in cands
            )
            + " |"
        )
    if "retention" in sets:
        ret = sets["retention"]
        lines += [
            "",
            "## Retention (what fine-tuning might break)",
            "",
            "| metric | " + " | ".join(cands) + " |",
            "|---|" + "---|" * len(cands),
            "| general questions answered right | "
            + " | ".join(_fmt(ret[c].get("general_fact"), True) for c in cands)
            + " |",
            "| other companies: no borrowed facts | "
            + " | ".join(_fmt(ret[c].get("other_leak_free"), True) for c in cands)
            + " |",
        ]
    if result.get("verdict"):
        lines += ["", "## Verdict", ""] + [f"- {v}" for v in result["verdict"]]
    lines += ["", "![metrics](eval.png)", ""]
    for c in cands:
        worst = result["worst"].get(c) or []
        if not worst:
            continue
        lines += [
            f"## Worst answers: {c}",
            "",
            "| question | answer | reference | sim |",
            "|---|---|---|---|",
        ]
        for w in worst:
            lines.append(
                "| "
                + " | ".join(_cell(x) for x in (w["question"], w["answer"], w["reference"]))
                + f" | {w['similarity']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chart(result: dict[str, Any], out: Path) -> None:
    """Bars with CI whiskers: fact accuracy, similarity, ROUGE-L, retention, per candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = list(result["candidates"])
    first = result["sets"]["eval"][cands[0]]
    company = "company" in (first.get("by_kind") or {})
    panels = [
        (
            "eval",
            "company_fact" if company else "fact",
            "fact accuracy: company" if company else "fact accuracy",
        ),
        ("eval", "similarity", "similarity"),
        ("eval", "rougeL", "ROUGE-L"),
    ]
    if "retention" in result["sets"]:
        panels += [
            ("retention", "general_fact", "retention: general"),
            ("retention", "other_leak_free", "retention: no borrowed facts"),
        ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    colors = ["#9e9e9e", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    for ax, (set_name, metric, title) in zip(axes, panels, strict=True):
        ests = [
            (result["sets"][set_name][c].get("by_kind") or {}).get("company", {}).get("fact")
            if metric == "company_fact"
            else result["sets"][set_name][c].get(metric)
            for c in cands
        ]
        means = [e["mean"] if e else 0 for e in ests]
        errs = [
            [m - e["low"] if e and "low" in e else 0 for m, e in zip(means, ests, strict=True)],
            [e["high"] - m if e and "high" in e else 0 for m, e in zip(means, ests, strict=True)],
        ]
        ax.bar(cands, means, yerr=errs, capsize=4, color=colors[: len(cands)])
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.suptitle(f"{result['name']}: candidates vs cloud references (95% CI)", fontsize=10)
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)


def write_report(result: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chart(result, folder / "eval.png")
    write_atomic(folder / "eval.json", json.dumps(result, indent=2, default=str) + "\n")
    write_atomic(folder / "eval.md", markdown(result))
