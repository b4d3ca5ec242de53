"""``jobs.evaluate`` through the real ``ray job submit`` CLI: batch candidates on vLLM through
``ray.data.llm`` (a tiny model vLLM can run, and its LoRA adapter), resume, mixed batches and
bad inputs."""

import json
import shutil

import pytest

from cluster.submit import submit
from tests.conftest import REPO

pytestmark = pytest.mark.integration
ENGINE = (
    "engine.engine_kwargs={dtype: float32, max_model_len: 512, enforce_eager: true}",
    "engine.cpus=0.5",
)


def evaluate(cluster, *args):
    return submit(
        cluster,
        ["python", "-m", "jobs.evaluate", *args],
        kind="evaluate",
        working_dir=REPO,
        timeout_s=900,
    )


def base_args(model, adapter, name="tiny-eval"):
    return [
        f"name={name}",
        "eval_set=data/support_chat/valid.jsonl",
        "retention_set=data/support_chat/retention.jsonl",
        f"candidates=[{{name: base, model: {model}}}, {{name: tuned, model: "
        f"{model}, adapter: {adapter}}}]",
        "generation.max_tokens=8",
        "bootstrap_samples=200",
        *ENGINE,
    ]


@pytest.mark.timeout(1800)  # three evaluations, each starting a vLLM engine: ~5 min on 2 cores
def test_evaluate_writes_the_report_and_resumes(
    ray_cluster, serving_model_dir, serving_adapter_dir
):
    job = evaluate(ray_cluster, *base_args(serving_model_dir, serving_adapter_dir))
    assert job.ok, job.output[-4000:]
    folder = ray_cluster.root / "reports" / "eval" / "tiny-eval"
    result = json.loads((folder / "eval.json").read_text())
    assert result["examples"] == {"eval": 60, "retention": 108}
    ev = result["sets"]["eval"]
    for cand in ("base", "tuned"):
        for metric in ("fact", "similarity", "rougeL"):
            est = ev[cand][metric]
            assert est["low"] <= est["mean"] <= est["high"] and est["n"] == 60, (cand, metric)
        assert "general_fact" in result["sets"]["retention"][cand]
        # vLLM 0.29 returns no prompt log-probabilities from an engine with LoRA enabled
        assert "ref_loss" not in ev[cand]
    assert "no reference loss for base, tuned" in job.output
    assert ev["reference"]["fact"]["mean"] == 1.0  # the references contain their own facts
    base = [a["answer"] for a in result["answers"]["base"]]
    tuned = [a["answer"] for a in result["answers"]["tuned"]]
    assert base != tuned  # the adapter rows really went through the adapter
    assert (folder / "eval.png").stat().st_size > 10_000
    md = (folder / "eval.md").read_text()
    assert "| metric | reference | base | tuned |" in md and "Worst answers: tuned" in md

    # Interrupted half-way: drop the last half of the tuned answers (and cut one line short).
    cache = folder / "answers" / "tuned.jsonl"
    lines = cache.read_text().splitlines()
    keep = lines[: 1 + (len(lines) - 1) // 2]
    cache.write_text("\n".join(keep) + "\n" + lines[len(keep)][:20] + "\n")
    missing = len(lines) - len(keep)
    again = evaluate(ray_cluster, *base_args(serving_model_dir, serving_adapter_dir))
    assert again.ok, again.output[-4000:]
    assert "candidate base (batch): 168 answers cached, 0 to generate" in again.output
    assert f"{len(keep) - 1} answers cached, {missing} to generate" in again.output
    rerun = json.loads((folder / "eval.json").read_text())
    before, after = result["answers"]["tuned"], rerun["answers"]["tuned"]
    assert [(a["id"], a["answer"]) for a in after] == [(a["id"], a["answer"]) for a in before]
    for a, b in zip(after, before, strict=True):
        assert a["similarity"] == pytest.approx(b["similarity"], abs=1e-4)

    # A base-only run answers every question as the base rows of the mixed run did: base rows
    # batched with adapter rows must not pick up the adapter.
    alone = evaluate(
        ray_cluster,
        "name=tiny-eval-base-only",
        "eval_set=data/support_chat/valid.jsonl",
        "retention_set=data/support_chat/retention.jsonl",
        f"candidates=[{{name: base, model: {serving_model_dir}}}]",
        "generation.max_tokens=8",
        "bootstrap_samples=200",
        *ENGINE,
    )
    assert alone.ok, alone.output[-4000:]
    only = json.loads((ray_cluster.root / "reports/eval/tiny-eval-base-only/eval.json").read_text())
    assert [a["answer"] for a in only["answers"]["base"]] == base
    # Without adapters the engine scores the references too (prompt log-probabilities).
    loss = only["sets"]["eval"]["base"]["ref_loss"]
    assert loss["n"] == 60 and 0 < loss["low"] <= loss["mean"] <= loss["high"]


def test_bad_inputs_fail_before_any_work(ray_cluster, tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\nnot json\n')
    job = evaluate(
        ray_cluster,
        "name=bad",
        f"eval_set={bad}",
        "candidates=[{name: a, model: no-such-model}, "
        f"{{name: b, model: {tiny_model_dir}, adapter: /no/adapter}}, "
        "{name: c, endpoint: 'http://127.0.0.1:9', model: x}]",
    )
    assert not job.ok
    out = job.output
    assert "line 1: the last turn must be the assistant's reference answer" in out
    assert "line 2: not valid JSON" in out
    assert "candidate 'a': model 'no-such-model' is neither in the model store" in out
    assert "candidate 'b': adapter '/no/adapter' not found" in out
    assert "candidate 'c': endpoint http://127.0.0.1:9 is not reachable" in out
    assert not (ray_cluster.root / "reports" / "eval" / "bad").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
