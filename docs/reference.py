"""Generate ``docs/reference.md`` from the code: every job's config fields (from its pydantic
schema), outputs and exit codes; the Serve app's args and API; the cost model's formulas.

    .venv/bin/python docs/reference.py           # rewrite docs/reference.md
    .venv/bin/python docs/reference.py --check   # exit 1 if it is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "docs" / "reference.md"

JOBS = [
    (
        "jobs.pull_model",
        "cluster.store.pull",
        "PullConfig",
        "jobs/configs/pull/",
        "`models/<name>/`: Hugging Face files and `manifest.json` (source, revision, parameters, "
        "every file's size and sha256).",
    ),
    (
        "jobs.finetune",
        "jobs.train.config",
        "FinetuneConfig",
        "jobs/configs/finetune/",
        "`runs/<run_name>/`: `adapter/` (or `model/`), `merged/` when asked, `metrics.jsonl`, "
        "`ds_config.json`, `config.yaml`, `result.json`, and Ray Train's `checkpoint_*` folders.",
    ),
    (
        "jobs.tune",
        "jobs.sweep.config",
        "TuneConfig",
        "jobs/configs/tune/",
        "`runs/tune/<name>/` (Ray Tune's state: what a restore reads) and, per trial, a fine-tune "
        "run `runs/<name>-<trial>/`; `reports/tune/<name>/`: `report.md`, `trials.csv`, "
        "`tradeoff.png`, `best.yaml` (the best trial as a runnable fine-tune config).",
    ),
    (
        "jobs.preference",
        "jobs.prefs.config",
        "PreferenceConfig",
        "jobs/configs/preference/",
        "`runs/<run_name>/`: `pairs.jsonl` (the supervised model's wrong answers beside the "
        "training answers), `adapter/`, `merged/`, `result.json`, and Ray Train's checkpoint.",
    ),
    (
        "jobs.evaluate",
        "jobs.eval.config",
        "EvalConfig",
        "jobs/configs/evaluate/",
        "`reports/eval/<name>/`: `eval.json`, `eval.md`, `eval.png`, `answers/<candidate>.jsonl` "
        "(the resumable answer cache).",
    ),
    (
        "jobs.bench_serve",
        "jobs.bench.config",
        "BenchConfig",
        None,
        "`reports/bench/<name or timestamp>/`: `bench.json`, `bench.md`, `bench.png`, "
        "`replicas.png` (with `--watch-replicas`).",
    ),
    (
        "jobs.cost_report",
        "jobs.cost.config",
        "CostConfig",
        "jobs/configs/cost/",
        "`reports/cost/<name or date>/`: `report.md`, `report.html` (charts embedded), PNG charts, "
        "CSV tables, `summary.json`.",
    ),
]
EXIT_CODES = "0 done · 1 failed while running · 2 bad config or input (nothing was started)"


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in args)
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def fields_table(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        nested = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if nested is not None:
            rows += fields_table(nested, f"{prefix}{name}.")
            continue
        default = (
            "required"
            if field.is_required()
            else repr(field.default_factory() if field.default_factory else field.default)
        )
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{name}` | {type_name(ann)} | {default} | {desc} |")
    return rows


def job_section(
    module: str, schema_mod: str, schema: str, configs: str | None, outputs: str
) -> list[str]:
    cls = getattr(importlib.import_module(schema_mod), schema)
    entry = importlib.import_module(module)
    summary = (entry.__doc__ or "").strip().splitlines()[0]
    lines = [f"## `python -m {module}`", "", summary, ""]
    if configs:
        shipped = sorted(p.name for p in (REPO / configs).glob("*.yaml"))
        lines += [f"Shipped configs in `{configs}`: " + ", ".join(f"`{s}`" for s in shipped), ""]
    lines += [
        f"Schema `{schema}` (`{schema_mod}`); set any field in the YAML, as `key=value` "
        "or as `--key value` on the command line:",
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
        *fields_table(cls),
        "",
        f"Outputs: {outputs}",
        "",
        f"Exit codes: {EXIT_CODES}",
        "",
    ]
    return lines


def render() -> str:
    from serve.app import AppArgs

    lines = [
        "# Reference",
        "",
        "Generated by `docs/reference.py` from the code (a test fails when it is stale). "
        "Every job runs the same way locally, on a fleet and on KubeRay:",
        "",
        "```bash",
        "ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\",
        "  python -m jobs.<job> --config jobs/configs/<job>/<file>.yaml [key=value ...]",
        "```",
        "",
    ]
    for job in JOBS:
        lines += job_section(*job)
    lines += [
        "## The Serve app (`serve/config.yaml`)",
        "",
        "Ray Serve's own config format (`serve run` / `serve deploy` / KubeRay "
        "`serveConfigV2`). `import_path: serve.app:build_app` builds Ray's LLM serving "
        "(`ray.serve.llm`, vLLM); its `args`:",
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
        *fields_table(AppArgs),
        "",
        "Each `llm_configs` entry is a Ray `LLMConfig` "
        "(https://docs.ray.io/en/latest/serve/llm/): `model_loading_config` (`model_id`, "
        "`model_source`: a model store name, a folder under the platform root such as "
        "`runs/<run>/merged`, or a remote URI), `engine_kwargs` (vLLM's engine arguments), "
        "`placement_group_config` (CPU bundles run vLLM's CPU backend, GPU bundles CUDA; one "
        "bundle per tensor-parallel rank), `deployment_config` (Serve options: "
        "`autoscaling_config`, `num_replicas`, `max_ongoing_requests`, `max_queued_requests` "
        "→ 503), `lora_config`, `runtime_env`; plus `adapters` (name → `runs/<run>/adapter` or "
        "a store entry), served as `<model_id>:<name>`.",
        "",
        "Deployments: `OnPremIngress` (Ray's `OpenAiIngress` with local adapters, one retry "
        "when a replica is lost before answering, on this platform's FastAPI app: request id, "
        "CORS, error bodies, API key, request checks, in that order; serve/ingress.py) → one "
        "`LLMServer:<model_id>` deployment per model (Ray's vLLM server with local LoRA "
        "folders, a health check that fails on a stuck engine, and replica-hours in the usage "
        "ledger).",
        "",
        "### API",
        "",
        "| route | what |",
        "|---|---|",
        "| `POST /v1/chat/completions` | OpenAI chat completions (vLLM's request schema); "
        "`stream: true` gives SSE chunks ending with `data: [DONE]`; "
        "`stream_options.include_usage` adds usage |",
        "| `POST /v1/completions` | OpenAI text completions |",
        "| `GET /v1/models` | every model and adapter (`model` picks one) |",
        "| `GET /health` | 200 when the ingress is up (no API key needed) |",
        "| `GET /openapi.json` | the OpenAPI schema (the fuzz test reads it) |",
        "",
        'Errors are `{"error": {"message", "type", "param", "code"}}`: 400 for a malformed '
        "body, naming the field in `param` (invalid JSON or UTF-8, JSON nested past the "
        "parser's limit, text with a lone UTF-16 surrogate, a message without the `content` "
        "OpenAI requires, wrong types, `max_tokens` out of range, a prompt longer than the "
        "context, a request over `limits`); 401 for a missing or wrong API key (when "
        "`api_key_env` holds one; a CORS preflight needs none); 404 for an unknown model or "
        "adapter; 413 for a body over `limits.max_body_bytes`; 503 with `Retry-After` when a "
        "model's queue is full or its replica was lost twice. Anything else is a 500 whose "
        "message holds only the request id (`X-Request-ID`); the traceback is in the ingress "
        "replica's log under that id.",
        "",
        "Metrics (Prometheus, through Ray's metrics agent on each node): vLLM's engine metrics "
        "as `ray_vllm_*` (requests running and waiting, KV-cache use, time to first token, "
        "time per output token, end-to-end latency, tokens), tagged by model and replica; Ray "
        "Serve's `ray_serve_*` request metrics.",
        "",
        "Operator commands: `python -m serve deploy|undeploy`, `python -m serve.scale "
        "--model ID --min N --max M | --replicas N`, `python -m serve.status [--json] "
        "[--watch S]`.",
        "",
    ]
    lines += ["## The cost model", ""]
    for name in ("model", "billing", "tco", "demand", "montecarlo"):
        module = importlib.import_module(f"jobs.cost.{name}")
        lines += [f"### `jobs/cost/{name}.py`", "", (module.__doc__ or "").strip(), ""]
    lines += [
        "## Cluster commands",
        "",
        "`python -m cluster up | down | status | env | "
        "import-jobs | demo | render-onprem`; ports: `ONPREM_GCS_PORT` (6390), "
        "`ONPREM_DASHBOARD_PORT` (8265), `ONPREM_CLIENT_PORT` (10001), "
        "`ONPREM_AGENT_PORT` (52365); paths: `ONPREM_ROOT`, `ONPREM_STORE`, "
        "`ONPREM_RUNS`, `ONPREM_REPORTS`, `ONPREM_LEDGER_URL`.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    text = render()
    if a.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print("docs/reference.md is out of date: run .venv/bin/python docs/reference.py")
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
