"""Load-test an OpenAI-compatible endpoint at several concurrency levels.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.bench_serve --url http://127.0.0.1:8000/v1 --concurrency 1,4,16 \
        --requests 32 --prompts data/support_chat/valid.jsonl --watch-replicas

Measures TTFT, TPOT, inter-token latency and end-to-end latency (p50/p90/p95/p99), request and
output-token throughput and errors; writes reports/bench/<timestamp>/bench.json, bench.md and
charts. Exit codes: 0 done (even with failed requests: they are counted), 2 bad input or the
endpoint is down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import threading
import time
from typing import Any

from cluster import paths
from cluster.config import cli_config
from cluster.endpoint_keys import EndpointKeyError, endpoint_key
from cluster.logs import setup_logging
from cluster.usage import track
from jobs.bench.config import BenchConfig
from jobs.bench.load import load_prompts, run_level
from jobs.bench.report import write

log = logging.getLogger("jobs.bench_serve")


class ReplicaWatcher:
    """Samples the running/target replica count of a model's deployment every second (Ray
    Serve LLM names it ``LLMServer:<model id>``; an adapter is served by its base's)."""

    def __init__(self, app: str, model: str):
        from cluster.address import resolve

        # RAY_API_SERVER_ADDRESS names the dashboard on every node the platform starts.
        self.cluster, self.app = resolve(), app
        self.model, self.deployment = model, "LLMServer:" + model.split(":", 1)[0]
        self.timeline: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from cluster.status import dashboard_get, running_replicas

        while not self._stop.is_set():
            try:
                state = dashboard_get(self.cluster, "/api/serve/applications/")
                app = (state.get("applications") or {}).get(self.app) or {}
                dep = (app.get("deployments") or {}).get(self.deployment) or {}
                self.timeline.append(
                    {
                        "t": time.time(),
                        "running": running_replicas(app, self.model),
                        "target": dep.get("target_num_replicas"),
                    }
                )
            except Exception as exc:  # a missed sample is fine; keep watching
                log.debug("replica sample failed: %s", exc)
            self._stop.wait(1.0)

    def __enter__(self) -> ReplicaWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def served_dtype(app: str, model: str) -> str | None:
    """The dtype the platform's app runs ``model`` in, from its deployed config (the config's
    ``engine_kwargs.dtype``, else what the platform picks for the placement, cluster.llm);
    None when the endpoint is not an app of this cluster."""
    from cluster.llm import cpu_engine_defaults
    from cluster.local import LocalCluster
    from cluster.status import dashboard_get

    base = model.split(":", 1)[0]
    try:
        state = dashboard_get(LocalCluster.from_env(), "/api/serve/applications/")
    except Exception:  # no cluster of ours to ask: an endpoint elsewhere
        return None
    deployed = ((state.get("applications") or {}).get(app) or {}).get("deployed_app_config")
    for llm in ((deployed or {}).get("args") or {}).get("llm_configs") or []:
        if (llm.get("model_loading_config") or {}).get("model_id") == base:
            kwargs = {
                **cpu_engine_defaults(llm.get("placement_group_config")),
                **(llm.get("engine_kwargs") or {}),
            }
            return str(kwargs.get("dtype", "auto"))
    return None


def check_endpoint(cfg: BenchConfig, headers: dict[str, str]) -> str | None:
    import httpx

    try:
        resp = httpx.get(cfg.url.rstrip("/") + "/models", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        return (
            f"endpoint {cfg.url} is not reachable ({type(exc).__name__}). Fix: deploy the "
            "app (serve deploy serve/config.yaml) or correct --url"
        )
    if resp.status_code != 200:
        return f"endpoint {cfg.url}/models answered HTTP {resp.status_code}"
    ids = [m["id"] for m in resp.json().get("data", [])]
    if cfg.model not in ids:
        return f"model {cfg.model!r} is not served at {cfg.url}; served: {', '.join(ids)}"
    return None


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(BenchConfig, "Load-test an OpenAI-compatible endpoint.", argv)
    try:
        key = endpoint_key(cfg.url, cfg.api_key_env)
    except EndpointKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    problem = check_endpoint(cfg, headers)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    prompts = load_prompts(cfg.prompts)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = paths.reports_dir() / "bench" / (cfg.name or stamp)
    levels = []
    watcher = ReplicaWatcher(cfg.app, cfg.model) if cfg.watch_replicas else None
    with track("bench", cfg.name or stamp, meta={"url": cfg.url}):
        if watcher:
            watcher.__enter__()
        try:
            for c in cfg.concurrency:
                start = time.time()
                n = max(cfg.requests, cfg.per_user * c)
                log.info("[bench] concurrency %d: %d requests ...", c, n)
                lv = asyncio.run(
                    run_level(
                        cfg.url,
                        headers,
                        cfg.model,
                        prompts,
                        c,
                        n,
                        cfg.max_tokens,
                        cfg.timeout_s,
                        warmup=cfg.warmup,
                    )
                )
                lv["start"] = start
                levels.append(lv)
                log.info(
                    "[bench] c=%d: %d ok, %d errors, %.1f output tok/s, %.2f req/s, "
                    "TTFT p50 %.0f ms, e2e p50 %.2f s p95 %.2f s",
                    c,
                    lv["completed"],
                    lv["errors"],
                    lv["output_token_throughput"],
                    lv["request_throughput"],
                    (lv["ttft_s"]["p50"] or 0) * 1000,
                    lv["e2e_s"]["p50"] or 0,
                    lv["e2e_s"]["p95"] or 0,
                )
            if watcher and cfg.cooldown_s:
                log.info("[bench] watching replicas for %.0f s after the load", cfg.cooldown_s)
                time.sleep(cfg.cooldown_s)
        finally:
            if watcher:
                watcher.__exit__()
    result: dict[str, Any] = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "url": cfg.url,
        "model": cfg.model,
        "requests": cfg.requests,
        "max_tokens": cfg.max_tokens,
        "prompts": cfg.prompts,
        # what the engine computed in (answers and speed differ between float32 and bf16)
        "engine_dtype": served_dtype(cfg.app, cfg.model),
        "levels": levels,
    }
    lo, hi = levels[0], levels[-1]
    if len(levels) > 1 and lo["output_token_throughput"]:
        ratio = hi["output_token_throughput"] / lo["output_token_throughput"]
        result["scaling"] = (
            f"output-token throughput at concurrency {hi['concurrency']} is "
            f"{ratio:.1f}x that at concurrency {lo['concurrency']} "
            f"({hi['output_token_throughput']:.1f} vs "
            f"{lo['output_token_throughput']:.1f} tok/s)"
        )
        result["throughput_ratio"] = ratio
        log.info("[bench] %s", result["scaling"])
    if watcher:
        tl = watcher.timeline
        result["replicas_timeline"] = tl
        if tl:
            peak = max(p["running"] for p in tl)
            result["replicas_summary"] = (
                f"replicas: {tl[0]['running']} at start, peak {peak}, "
                f"{tl[-1]['running']} at the end"
            )
            log.info("[bench] %s", result["replicas_summary"])
    write(result, folder)
    log.info("[bench] report: %s", folder / "bench.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
