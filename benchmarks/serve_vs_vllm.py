"""Output tokens/s through the Serve app against vLLM's own OpenAI server, side by side: same
model folder, same engine arguments and CPU settings (read from serve/config.yaml), same
prompts, streamed, at 1 and 16 concurrent users. Levels alternate between the targets round
by round, so a noisy neighbour hits all of them alike.

    make demo        # leaves the Serve app running (or: python -m serve deploy)
    .venv/bin/python benchmarks/serve_vs_vllm.py --model smollm2-support --rounds 2
    # another OpenAI-compatible target in the same run, e.g. an older build of the app:
    .venv/bin/python benchmarks/serve_vs_vllm.py --target old=http://127.0.0.1:8001/v1

Prints, per target and level, output tokens/s and streamed end-to-end p50/p95, then the
ratios the README quotes; writes reports/benchmarks/serve_vs_vllm.json. Also records vLLM's
engine start time and the server's resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def engine_flags(engine_kwargs: dict[str, Any]) -> list[str]:
    """vLLM CLI flags for an ``engine_kwargs`` dict (``max_model_len: 2048`` ->
    ``--max-model-len 2048``; ``true`` -> a bare flag)."""
    flags = []
    for key, value in engine_kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False and value is not None:
            flags += [flag, str(value)]
    return flags


def replica_niceness() -> int:
    """The niceness Ray gives its worker processes (the Serve replicas run at it), so that
    vLLM's own server competes for the CPUs on the same terms."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        if any("ServeReplica:" in part for part in proc.info.get("cmdline") or []):
            return proc.nice()
    return 0


def start_vllm(
    model: str, port: int, log: Path, source: str | None = None, config: Path | None = None
) -> tuple[subprocess.Popen, float]:
    """vLLM's own OpenAI server for ``model`` as the Serve config (default serve/config.yaml)
    configures it (from ``source``, a store name or folder, when the app was deployed with
    ``--model ID=SOURCE``)."""
    from serve.app import llm_config

    path = config or REPO / "serve" / "config.yaml"
    args = yaml.safe_load(path.read_text())["applications"][0]
    llms = args["args"]["llm_configs"]
    # The app may serve the config's first model under another id (`--model ID=SOURCE`).
    raw = next((c for c in llms if c["model_loading_config"]["model_id"] == model), llms[0])
    if source:
        raw = {**raw, "model_loading_config": {"model_id": model, "model_source": source}}
    cfg, _ = llm_config(raw)
    env = {**os.environ, **((cfg.runtime_env or {}).get("env_vars") or {})}
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        cfg.model_loading_config.model_source,
        "--served-model-name",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-log-stats",
        *engine_flags(cfg.engine_kwargs),
    ]
    nice = replica_niceness()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: os.nice(nice),
    )
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM's server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > 600:
            raise TimeoutError("vLLM's server did not start in 600 s")
        time.sleep(1)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (vLLM's engine core and worker)."""
    parent = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20


def replica_rss_mb(model: str) -> float | None:
    """Resident memory of one Serve replica of ``model`` with its vLLM processes."""
    for proc in psutil.process_iter(["cmdline"]):
        if any(f"LLMServer:{model}" in part for part in proc.info.get("cmdline") or []):
            return rss_mb(proc.pid)
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--serve-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--model", default="smollm2-support", help="model id in serve/config.yaml")
    p.add_argument(
        "--source",
        help="the model the app serves as --model, if deployed with --model ID=SOURCE "
        "(default: the config's)",
    )
    p.add_argument("--concurrency", default="1,16")
    p.add_argument("--requests-per-user", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--vllm-port", type=int, default=8100)
    p.add_argument("--prompts", default="data/support_chat/valid.jsonl")
    p.add_argument("--target", action="append", default=[], metavar="NAME=URL")
    p.add_argument(
        "--config",
        type=Path,
        help="the Serve config the app was deployed from (default serve/config.yaml); vLLM's "
        "server gets the same engine arguments",
    )
    p.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks")
    a = p.parse_args()
    from jobs.bench.load import load_prompts, run_level

    key = os.environ.get("ONPREM_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    prompts = load_prompts(REPO / a.prompts)
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    proc, start_s = start_vllm(a.model, a.vllm_port, out / "vllm_server.log", a.source, a.config)
    targets = {
        "serve": a.serve_url,
        "vllm": f"http://127.0.0.1:{a.vllm_port}/v1",
        **dict(t.split("=", 1) for t in a.target),
    }
    levels = [int(c) for c in a.concurrency.split(",")]
    results: dict[str, dict[int, list[dict[str, Any]]]] = {
        t: {c: [] for c in levels} for t in targets
    }
    try:
        memory_mb = {"vllm": rss_mb(proc.pid), "serve": replica_rss_mb(a.model)}
        for r in range(a.rounds):
            for c in levels:
                for name, url in targets.items():
                    level = asyncio.run(
                        run_level(
                            url,
                            headers,
                            a.model,
                            prompts,
                            concurrency=c,
                            n=c * a.requests_per_user,
                            max_tokens=a.max_tokens,
                            timeout_s=600,
                            warmup=1 if r == 0 else 0,
                        )
                    )
                    results[name][c].append(level)
                    print(
                        f"round {r + 1} c={c:<3} {name:<6} "
                        f"{level['output_token_throughput']:6.1f} tok/s  "
                        f"e2e p50 {level['e2e_s']['p50'] or 0:.2f} s  "
                        f"errors {level['errors']}",
                        flush=True,
                    )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    summary = summarize(results, levels)
    summary.update(
        vllm_start_s=round(start_s, 1),
        vllm_server_rss_mb=round(memory_mb["vllm"]),
        serve_replica_rss_mb=round(memory_mb["serve"]) if memory_mb["serve"] else None,
    )
    print(render(summary, levels))
    (out / "serve_vs_vllm.json").write_text(json.dumps({"summary": summary, "raw": results}))
    return 0


def summarize(results: dict[str, dict[int, list[dict[str, Any]]]], levels: list[int]) -> dict:
    """Median over rounds of tokens/s and e2e latency per target and level; the ratios."""
    table: dict[str, Any] = {}
    for name, by_level in results.items():
        table[name] = {
            c: {
                "tok_s": statistics.median(r["output_token_throughput"] for r in runs),
                "e2e_p50_s": statistics.median(r["e2e_s"]["p50"] or 0 for r in runs),
                "e2e_p95_s": statistics.median(_p95(r) for r in runs),
                "errors": sum(r["errors"] for r in runs),
            }
            for c, runs in by_level.items()
        }
    lo, hi = min(levels), max(levels)
    ratios = {
        f"serve/vllm at {c}": table["serve"][c]["tok_s"] / table["vllm"][c]["tok_s"] for c in levels
    }
    ratios.update(
        {f"{n} {hi} vs {lo} users": table[n][hi]["tok_s"] / table[n][lo]["tok_s"] for n in table}
    )
    for name in table:
        if name not in ("serve", "vllm"):
            ratios[f"serve/{name} at {hi}"] = table["serve"][hi]["tok_s"] / table[name][hi]["tok_s"]
    return {"table": table, "ratios": ratios}


def _p95(level: dict[str, Any]) -> float:
    return level["e2e_s"].get("p95") or level["e2e_s"].get("p90") or 0.0


def render(summary: dict[str, Any], levels: list[int]) -> str:
    lines = ["", "target  " + "".join(f"{'c=' + str(c):>28}" for c in levels)]
    for name, row in summary["table"].items():
        cells = "".join(
            f"{row[c]['tok_s']:>8.1f} tok/s "
            f"{row[c]['e2e_p50_s']:>5.2f}/{row[c]['e2e_p95_s']:>5.2f} s"
            for c in levels
        )
        lines.append(f"{name:<8}{cells}")
    lines.append("(tok/s: output tokens/s; then streamed end-to-end p50/p95)")
    lines += [f"{k}: {v:.2f}x" for k, v in summary["ratios"].items()]
    lines.append(
        f"vLLM's server: start {summary.get('vllm_start_s')} s (process to first /health), "
        f"RSS {summary.get('vllm_server_rss_mb')} MB; one Serve replica with its engine: RSS "
        f"{summary.get('serve_replica_rss_mb')} MB"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
