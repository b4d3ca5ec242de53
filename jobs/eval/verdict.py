"""What the scores mean: paired differences with the base model, the plain-language
comparison, and the PASS/FAIL verdict against the config's thresholds (pure functions of the
scored rows and summaries)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobs.eval.metrics import paired_difference

# (set, metric, which rows): the paired differences reported for each candidate minus base.
PAIRED = (
    ("eval", "fact", None),
    ("eval", "wrong_fact", None),
    ("eval", "similarity", None),
    ("eval", "rougeL", None),
    ("eval", "ref_loss", None),
    ("eval", "length_words", None),
    ("retention", "fact", "general"),
    ("retention", "leak_free", "other_company"),
)


def _kind(row: dict[str, Any]) -> str:
    return str((row.get("metadata") or {}).get("kind"))


def _origin(row: dict[str, Any]) -> str | None:
    return (row.get("metadata") or {}).get("origin")


def differences(
    rows: dict[str, dict[str, list[dict[str, Any]]]],
    base: str,
    other: str,
    samples: int,
    confidence: float,
) -> list[dict[str, Any]]:
    """``other`` minus ``base`` per metric, on the same examples resampled jointly: over the
    whole set, per ``metadata.kind`` when a set mixes kinds, and per ``metadata.origin``."""
    out = []
    for set_name, metric, kind in PAIRED:
        if set_name not in rows:
            continue
        a, b = rows[set_name][base], rows[set_name][other]
        subsets: list[tuple[str, list[int]]] = [
            ("all", [i for i, r in enumerate(a) if kind is None or _kind(r) == kind])
        ]
        kinds = sorted({_kind(r) for r in a})
        if kind is None and len(kinds) > 1:
            subsets += [(k, [i for i, r in enumerate(a) if _kind(r) == k]) for k in kinds]
        origins = sorted({o for r in a if (o := _origin(r))})
        subsets += [
            (o, [i for i in subsets[0][1] if _origin(a[i]) == o])
            for o in origins
            if len(origins) > 1
        ]
        for subset, idx in subsets:
            est = paired_difference(
                [a[i].get(metric) for i in idx],
                [b[i].get(metric) for i in idx],
                samples,
                confidence,
            )
            if est.n:
                out.append({"set": set_name, "subset": subset, "metric": metric, **est.as_dict()})
    return out


def _diff(diffs: Sequence[dict[str, Any]], set_name: str, metric: str) -> dict[str, Any] | None:
    return next(
        (
            d
            for d in diffs
            if d["set"] == set_name and d["metric"] == metric and d["subset"] == "all"
        ),
        None,
    )


def _held_out(summary: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """A held-out metric on the company questions when the set has them, else on all."""
    company = (summary.get("by_kind") or {}).get("company")
    return (company or summary).get(metric)


def _drop(diff: dict[str, Any] | None) -> dict[str, Any] | None:
    """base minus candidate, from a candidate-minus-base difference."""
    if diff is None:
        return None
    # + 0.0 turns a negated zero into 0.0, so no drop reads "-0.0%"
    return {
        "mean": -diff["mean"] + 0.0,
        "low": -diff["high"] + 0.0,
        "high": -diff["low"] + 0.0,
        "n": diff["n"],
    }


CHECKS = {
    # threshold: (what is measured, True when the measured value must stay at or below it)
    "facts_min": ("held-out fact accuracy (company questions)", False),
    "wrong_facts_max": ("held-out answers stating a wrong value", True),
    "retention_drop_max": ("drop in general retention answers right (base - candidate)", True),
    "leak_free_drop_max": ("drop in other-company answers without borrowed facts", True),
}


def judge(
    thresholds: dict[str, float],
    summary: dict[str, Any],
    diffs: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Each threshold against the candidate's measured mean (interval kept beside it), and the
    overall verdict: PASS only when every threshold holds. A threshold that cannot be measured
    (e.g. an eval set without ``metadata.values``) fails: it was not shown to hold."""
    measured = {
        "facts_min": _held_out(summary["eval"], "fact"),
        "wrong_facts_max": _held_out(summary["eval"], "wrong_fact"),
        "retention_drop_max": _drop(_diff(diffs, "retention", "fact")),
        "leak_free_drop_max": _drop(_diff(diffs, "retention", "leak_free")),
    }
    drop_reason = "no retention_set" if "retention" not in summary else "no base candidate"
    missing = {
        "facts_min": "no metadata.facts in the eval set",
        "wrong_facts_max": "no metadata.values in the eval set",
        "retention_drop_max": drop_reason,
        "leak_free_drop_max": drop_reason,
    }
    checks = []
    for key, limit in thresholds.items():
        label, at_most = CHECKS[key]
        est = measured[key]
        ok = est is not None and (est["mean"] <= limit if at_most else est["mean"] >= limit)
        checks.append(
            {
                "threshold": key,
                "measures": label,
                "limit": limit,
                "measured": est,
                "pass": bool(ok),
                **({} if est else {"not_measured": missing[key]}),
            }
        )
    return {"checks": checks, "pass": all(c["pass"] for c in checks)}


def comparison(
    sets: dict[str, Any],
    base: str | None,
    tuned: list[str],
    diffs: dict[str, list[dict[str, Any]]],
) -> list[str]:
    """Plain-language comparison of each tuned candidate with the base one: fact accuracy as
    the paired difference (per kind when the set has kinds, company questions first)."""
    if not base or base not in sets["eval"]:
        return []
    lines = []
    for c in tuned:
        ev_b, ev_c = sets["eval"][base], sets["eval"][c]
        better = [
            m
            for m, hib in (
                ("fact", True),
                ("similarity", True),
                ("rougeL", True),
                ("ref_loss", False),
            )
            if m in ev_b and m in ev_c and ((ev_c[m]["mean"] > ev_b[m]["mean"]) == hib)
        ]
        lines.append(
            f"{c} beats {base} on {len(better)} of 4 held-out metrics "
            f"({', '.join(better) or 'none'})"
        )
        facts = [d for d in diffs.get(c, []) if d["set"] == "eval" and d["metric"] == "fact"]
        kinds = [d for d in facts if d["subset"] != "all"] or facts
        for d in sorted(kinds, key=lambda d: d["subset"] != "company"):
            label = "" if d["subset"] == "all" else f" ({d['subset']} questions)"
            lines.append(
                f"{c} fact accuracy{label} minus {base}'s: {d['mean'] * 100:+.0f} points, "
                f"paired interval [{d['low'] * 100:+.0f}, {d['high'] * 100:+.0f}]"
            )
        if "retention" in sets:
            for key, label in (
                ("general_fact", "general answers"),
                ("other_leak_free", "other-company answers without borrowed facts"),
            ):
                rb, rc = sets["retention"][base].get(key), sets["retention"][c].get(key)
                if rb and rc:
                    delta = (rc["mean"] - rb["mean"]) * 100
                    lines.append(
                        f"retention, {label}: {c} {rc['mean']:.0%} vs {base} "
                        f"{rb['mean']:.0%} ({delta:+.1f} points)"
                    )
    return lines
