"""``eval.json``, ``eval.md`` and ``eval.png``: the comparison a person reads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cluster.atomic import replacing, write_text

LABELS = {
    "fact": "fact accuracy",
    "similarity": "semantic similarity",
    "rougeL": "ROUGE-L",
    "ref_loss": "reference loss",
    "length_words": "answer length (words)",
    "latency_s": "latency (s)",
    "leak_free": "no borrowed facts",
    "wrong_fact": "wrong value stated",
}
HIGHER_IS_BETTER = {
    "fact": True,
    "similarity": True,
    "rougeL": True,
    "ref_loss": False,
    "leak_free": True,
    "wrong_fact": False,
}


def _fmt(est: dict[str, float] | None, pct: bool = False) -> str:
    if not est or est.get("mean") is None or math.isnan(est["mean"]):
        return "n/a"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    mean = est["mean"] * scale
    if "low" in est:
        return f"{mean:.1f}{unit} [{est['low'] * scale:.1f}, {est['high'] * scale:.1f}]"
    return f"{mean:.2f}{unit}"


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
        + f" · greedy, max {result['generation']['max_tokens']} tokens"
        + (f" · batch engine in {result['engine_dtype']}" if result.get("engine_dtype") else "")
        + f" · {int(result['confidence'] * 100)}% bootstrap intervals",
        "",
    ]
    ev = sets["eval"]
    ref = ev["reference"]
    lines += [
        "## Against the reference answers (held-out set)",
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
        ("wrong_fact", True),
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
        origins = sorted({o for c in cands for o in ret[c].get("by_origin") or {}})
        for origin in origins:
            for key, label in (
                ("general_fact", "general questions answered right"),
                ("other_leak_free", "other companies: no borrowed facts"),
            ):
                row = [f"{label}, {origin}"]
                row += [
                    _fmt((ret[c].get("by_origin") or {}).get(origin, {}).get(key), True)
                    for c in cands
                ]
                lines.append("| " + " | ".join(row) + " |")
        if origins:
            lines += [
                "",
                "Origins: the model-selected batch was picked by running the base model and "
                "favours it; the a-priori batch was written without running any model "
                "(data/support_chat/README.md).",
            ]
    lines += differences_table(result)
    if result.get("comparison"):
        lines += ["", "## Comparison with the base model", ""]
        lines += [f"- {v}" for v in result["comparison"]]
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
    lines += verdict_table(result)
    return "\n".join(lines) + "\n"


SUBSETS = {"all": "", "company": ", company questions", "general": ", general questions"}


def differences_table(result: dict[str, Any]) -> list[str]:
    """Each candidate minus the base model, with paired bootstrap intervals."""
    diffs = result.get("differences") or {}
    if not diffs:
        return []
    pct = {"fact", "wrong_fact", "leak_free"}
    lines = [
        "",
        f"## Differences with {result['base']} (paired)",
        "",
        f"Candidate minus {result['base']} on the same examples, resampled jointly "
        f"({int(result['confidence'] * 100)}% paired bootstrap intervals; percentage points "
        "for rates). An interval that excludes 0 is a difference this sample resolves.",
        "",
        "| set | metric | " + " | ".join(diffs) + " |",
        "|---|---|" + "---|" * len(diffs),
    ]
    keys = list(
        dict.fromkeys((d["set"], d["subset"], d["metric"]) for v in diffs.values() for d in v)
    )
    for set_name, subset, metric in keys:
        label = (
            LABELS.get(metric, metric)
            if set_name == "eval"
            else ("general questions answered right" if metric == "fact" else LABELS[metric])
        )
        label += (
            SUBSETS.get(subset, f", {subset}")
            if set_name == "eval"
            else ("" if subset == "all" else f", {subset}")
        )
        row = [set_name, label]
        for v in diffs.values():
            d = next(
                (
                    d
                    for d in v
                    if (d["set"], d["subset"], d["metric"]) == (set_name, subset, metric)
                ),
                None,
            )
            row.append(_signed(d, metric in pct))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _signed(d: dict[str, float] | None, pct: bool) -> str:
    if not d or math.isnan(d["mean"]):
        return "n/a"
    if pct:
        m, lo, hi = (d[k] * 100 for k in ("mean", "low", "high"))
        return f"{m:+.1f} pt [{lo:+.1f}, {hi:+.1f}]"
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def _measured(check: dict[str, Any]) -> str:
    if check.get("not_measured"):
        return f"not measured ({check['not_measured']})"
    return _fmt(check["measured"], True)


def verdict_table(result: dict[str, Any]) -> list[str]:
    """The last section: each threshold, what was measured, PASS/FAIL, and overall."""
    verdict = result.get("verdict") or {}
    if not verdict.get("candidates"):
        return [
            "## Verdict",
            "",
            "No thresholds set in the config (`thresholds:`), so no verdict.",
            "",
        ]
    lines = ["## Verdict", ""]
    for name, v in verdict["candidates"].items():
        lines += [
            f"{name}: thresholds from the config, judged on the measured mean "
            f"({int(result['confidence'] * 100)}% interval beside it).",
            "",
            "| threshold | measures | limit | measured | result |",
            "|---|---|---|---|---|",
        ]
        for c in v["checks"]:
            lines.append(
                f"| `{c['threshold']}` | {c['measures']} | {c['limit'] * 100:.1f}% | "
                f"{_measured(c)} | {'PASS' if c['pass'] else 'FAIL'} |"
            )
        lines += [f"| **overall** | | | | **{'PASS' if v['pass'] else 'FAIL'}** |", ""]
    return lines


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
    fig.suptitle(f"{result['name']}: candidates vs reference answers (95% CI)", fontsize=10)
    fig.tight_layout()
    with replacing(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(result: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chart(result, folder / "eval.png")
    write_text(folder / "eval.json", json.dumps(result, indent=2, default=str) + "\n")
    write_text(folder / "eval.md", markdown(result))
