"""What a sweep leaves for a person: every trial's parameters and scores (trials.csv, a table in
report.md), the trade-off between facts learned and what tuning broke (tradeoff.png), and the
best trial as a runnable fine-tune config (best.yaml). Written to a temporary folder and renamed
into place, so a failed report never replaces a good one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from cluster.atomic import replacing
from jobs.sweep.config import TuneConfig, recipe

COLUMNS = ("score", "facts", "wrong_facts", "retention_drop", "leak_free_drop", "pass")


def best_row(table: Any) -> Any | None:
    """The finished trial with the highest score (ties: more facts), or None."""
    done = table[table["status"] == "DONE"]
    if done.empty:
        return None
    return done.sort_values(["score", "facts"], ascending=False).iloc[0]


def params_of(row: Any) -> dict[str, Any]:
    return {k.removeprefix("param:"): _plain(v) for k, v in row.items() if k.startswith("param:")}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def markdown(cfg: TuneConfig, table: Any, best: Any | None) -> str:
    thresholds = cfg.selection.thresholds.judged()
    lines = [
        f"# Sweep: {cfg.name}",
        "",
        f"{len(table)} trials of `{cfg.finetune}` over "
        + ", ".join(f"`{k}`" for k in cfg.space)
        + f", scored on the selection split `{cfg.selection.eval_set}` (greedy, max "
        f"{cfg.selection.max_tokens} tokens) against "
        + ", ".join(f"{k} {v:g}" for k, v in thresholds.items())
        + ". The score is the smallest margin to a threshold: >= 0 passes every check on the "
        "split. The held-out and retention sets were not used.",
        "",
    ]
    params = [c for c in table.columns if c.startswith("param:")]
    head = ["trial", *(p.removeprefix("param:") for p in params), "status", *COLUMNS]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.sort_values("score", ascending=False, na_position="last").iterrows():
        cells = [str(r["trial"]), *(_fmt(r[p]) for p in params), str(r["status"])]
        cells += [_fmt(r.get(c)) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if best is None:
        lines.append("No trial finished: no recipe to recommend.")
    else:
        verdict = "passes every check" if best["pass"] else "does not pass every check"
        lines += [
            f"Best: **{best['trial']}** (score {_fmt(best['score'])}), which {verdict} on the "
            "selection split: "
            + ", ".join(f"`{k}` = {_fmt(v)}" for k, v in params_of(best).items())
            + ". Its recipe is `best.yaml` (run it with `python -m jobs.finetune --config "
            "best.yaml`); the verdict is then the evaluation job's, on the held-out sets.",
        ]
    lines += ["", "![facts vs what tuning broke](tradeoff.png)", ""]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def chart(cfg: TuneConfig, table: Any, out: Path) -> None:
    """Facts on the selection split against the leak-free drop, colour = retention drop; the
    thresholds as lines: the upper-left box passes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = table[table["status"] == "DONE"]
    th = cfg.selection.thresholds
    fig, ax = plt.subplots(figsize=(7, 5))
    points = ax.scatter(
        done["leak_free_drop"].astype(float),
        done["facts"].astype(float),
        c=done["retention_drop"].astype(float),
        cmap="viridis_r",
        s=60,
    )
    for _, r in done.iterrows():
        ax.annotate(str(r["trial"])[-5:], (r["leak_free_drop"], r["facts"]), fontsize=7)
    if th.facts_min is not None:
        ax.axhline(th.facts_min, color="grey", ls="--", lw=1, label=f"facts >= {th.facts_min:g}")
    if th.leak_free_drop_max is not None:
        ax.axvline(
            th.leak_free_drop_max,
            color="grey",
            ls=":",
            lw=1,
            label=f"leak-free drop <= {th.leak_free_drop_max:g}",
        )
    fig.colorbar(points, ax=ax, label="general retention drop")
    ax.set_xlabel("other-company answers: drop in leak-free share (base - trial)")
    ax.set_ylabel("company facts answered right")
    ax.set_title(f"sweep {cfg.name}: what each trial learned and broke (selection split)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write(cfg: TuneConfig, table: Any, folder: Path) -> Any | None:
    """reports/tune/<name>/ with report.md, trials.csv, tradeoff.png, best.yaml; the best row."""
    best = best_row(table)
    with replacing(folder) as tmp:
        tmp.mkdir()
        # Keep what else lives there (the split the trials were scored on).
        if folder.is_dir():
            shutil.copytree(folder, tmp, dirs_exist_ok=True)
        table.to_csv(tmp / "trials.csv", index=False)
        chart(cfg, table, tmp / "tradeoff.png")
        if best is not None:
            data = recipe(cfg, params_of(best))
            header = (
                f"# The best trial of sweep {cfg.name} ({best['trial']}, score "
                f"{_fmt(best['score'])} on the selection split): {cfg.finetune} with\n# "
                + ", ".join(f"{k}={_fmt(v)}" for k, v in params_of(best).items())
                + f"\n#   python -m jobs.finetune --config {folder / 'best.yaml'}\n"
            )
            (tmp / "best.yaml").write_text(header + yaml.safe_dump(data, sort_keys=False))
        (tmp / "report.md").write_text(markdown(cfg, table, best))
    return best
