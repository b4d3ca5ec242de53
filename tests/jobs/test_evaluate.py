"""``jobs.evaluate`` through the real ``ray job submit`` CLI: batch candidates on vLLM through
``ray.data.llm`` (a tiny model vLLM can run, and its LoRA adapter) on subsets of the sets,
resume, mixed batches and bad inputs."""

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


def subsets(folder, per_kind=6):
    """The first ``per_kind`` lines of each kind of the held-out set (company, general) and of
    the retention set (general, other company), in file order."""
    out = {}
    for name in ("valid", "retention"):
        taken: dict[str, int] = {}
        lines = []
        for line in (REPO / f"data/support_chat/{name}.jsonl").read_text().splitlines():
            kind = json.loads(line)["metadata"]["kind"]
            if taken.get(kind, 0) < per_kind:
                taken[kind] = taken.get(kind, 0) + 1
                lines.append(line)
        assert len(taken) == 2 and sum(taken.values()) == 2 * per_kind, taken
        out[name] = folder / f"{name}.jsonl"
        out[name].write_text("\n".join(lines) + "\n")
    return out


def args(name, sets, candidates):
    return [
        f"name={name}",
        f"eval_set={sets['valid']}",
        f"retention_set={sets['retention']}",
        f"candidates={candidates}",
        "generation.max_tokens=8",
        "bootstrap_samples=200",
        *ENGINE,
    ]


def test_evaluate_writes_the_report_resumes_and_keeps_base_rows_apart_from_adapter_rows(
    ray_cluster, serving_model_dir, serving_adapter_dir, tmp_path
):
    """Two runs. The base model alone (its engine also scores the references). Then base and
    adapter in one engine, resuming an interrupted run: half of the base answers are cached,
    the other half are generated in batches with the adapter's rows, and must come out as the
    base model alone answered them."""
    sets = subsets(tmp_path)
    reports = ray_cluster.root / "reports" / "eval"
    alone = evaluate(
        ray_cluster, *args("tiny-eval-base", sets, f"[{{name: base, model: {serving_model_dir}}}]")
    )
    assert alone.ok, alone.output[-4000:]
    only = json.loads((reports / "tiny-eval-base" / "eval.json").read_text())
    assert only["examples"] == {"eval": 12, "retention": 12}
    assert only["engine_dtype"] == "float32"  # pinned for the tests (tests/conftest.py)
    loss = only["sets"]["eval"]["base"]["ref_loss"]  # no adapters: prompt log-probabilities
    assert loss["n"] == 12 and 0 < loss["low"] <= loss["mean"] <= loss["high"]
    base_alone = {a["id"]: a["answer"] for a in only["answers"]["base"]}

    # An interrupted mixed run: its cache holds the first half of the base answers, the last
    # line cut short by the kill.
    cache = reports / "tiny-eval" / "answers" / "base.jsonl"
    cache.parent.mkdir(parents=True)
    lines = (reports / "tiny-eval-base" / "answers" / "base.jsonl").read_text().splitlines()
    keep = lines[: 1 + (len(lines) - 1) // 2]  # the fingerprint line and half the answers
    cache.write_text("\n".join(keep) + "\n" + lines[len(keep)][:20] + "\n")
    missing = len(lines) - len(keep)
    both = (
        f"[{{name: base, model: {serving_model_dir}}}, "
        f"{{name: tuned, model: {serving_model_dir}, adapter: {serving_adapter_dir}}}]"
    )
    job = evaluate(ray_cluster, *args("tiny-eval", sets, both))
    assert job.ok, job.output[-4000:]
    assert f"candidate base (batch): {len(keep) - 1} answers cached, {missing} to generate" in (
        job.output
    )
    assert "candidate tuned (batch): 0 answers cached, 24 to generate" in job.output
    folder = reports / "tiny-eval"
    result = json.loads((folder / "eval.json").read_text())
    ev = result["sets"]["eval"]
    for cand in ("base", "tuned"):
        for metric in ("fact", "similarity", "rougeL"):
            est = ev[cand][metric]
            assert est["low"] <= est["mean"] <= est["high"] and est["n"] == 12, (cand, metric)
        retention = result["sets"]["retention"][cand]
        assert retention["general_fact"]["n"] == 6 and retention["other_leak_free"]["n"] == 6
    # vLLM 0.29 returns no prompt log-probabilities from an engine with LoRA enabled
    assert "ref_loss" not in ev["tuned"] and "no reference loss for base, tuned" in job.output
    assert ev["reference"]["fact"]["mean"] == 1.0  # the references contain their own facts
    base = {a["id"]: a["answer"] for a in result["answers"]["base"]}
    tuned = {a["id"]: a["answer"] for a in result["answers"]["tuned"]}
    # base rows generated beside adapter rows answer as the base model alone did
    assert base == base_alone
    assert base != tuned  # the adapter rows really went through the adapter
    assert (folder / "eval.png").stat().st_size > 10_000
    md = (folder / "eval.md").read_text()
    assert "| metric | reference | base | tuned |" in md and "Worst answers: tuned" in md
    assert "batch engine in float32" in md


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
