"""``jobs.evaluate`` on the tiny model through the real ``ray job submit`` CLI."""

import json
import shutil

import pytest

from cluster.submit import submit
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def evaluate(cluster, *args):
    return submit(
        cluster,
        ["python", "-m", "jobs.evaluate", *args],
        kind="evaluate",
        working_dir=REPO,
        timeout_s=600,
    )


def base_args(tiny_model_dir, tiny_adapter_dir, name="tiny-eval"):
    return [
        f"name={name}",
        "eval_set=data/support_chat/valid.jsonl",
        "retention_set=data/support_chat/retention.jsonl",
        f"candidates=[{{name: base, model: {tiny_model_dir}}}, {{name: tuned, model: "
        f"{tiny_model_dir}, adapter: {tiny_adapter_dir}}}]",
        "generation.max_tokens=8",
        "generation.batch_size=16",
        "bootstrap_samples=200",
    ]


def test_evaluate_writes_the_report_and_resumes(ray_cluster, tiny_model_dir, tiny_adapter_dir):
    job = evaluate(ray_cluster, *base_args(tiny_model_dir, tiny_adapter_dir))
    assert job.ok, job.output
    folder = ray_cluster.root / "reports" / "eval" / "tiny-eval"
    result = json.loads((folder / "eval.json").read_text())
    assert result["examples"] == {"eval": 60, "retention": 108}
    ev = result["sets"]["eval"]
    for cand in ("base", "tuned"):
        for metric in ("fact", "similarity", "rougeL", "ref_loss", "latency_s"):
            est = ev[cand][metric]
            assert est["low"] <= est["mean"] <= est["high"] and est["n"] > 0
        assert "general_fact" in result["sets"]["retention"][cand]
    assert ev["reference"]["fact"]["mean"] == 1.0  # the references contain their own facts
    assert ev["base"]["ref_loss"]["mean"] != ev["tuned"]["ref_loss"]["mean"]
    assert (folder / "eval.png").stat().st_size > 10_000
    md = (folder / "eval.md").read_text()
    assert "| metric | reference | base | tuned |" in md and "Worst answers: tuned" in md

    # Interrupted half-way: drop the last half of the tuned answers (and cut one line short).
    cache = folder / "answers" / "tuned.jsonl"
    lines = cache.read_text().splitlines()
    keep = lines[: 1 + (len(lines) - 1) // 2]
    cache.write_text("\n".join(keep) + "\n" + lines[len(keep)][:20] + "\n")
    missing = len(lines) - len(keep)
    again = evaluate(ray_cluster, *base_args(tiny_model_dir, tiny_adapter_dir))
    assert again.ok, again.output
    assert "candidate base (in-process): 168 answers cached, 0 to generate" in again.output
    assert f"{len(keep) - 1} answers cached, {missing} to generate" in again.output
    rerun = json.loads((folder / "eval.json").read_text())

    before, after = result["answers"]["tuned"], rerun["answers"]["tuned"]
    assert [(a["id"], a["answer"]) for a in after] == [(a["id"], a["answer"]) for a in before]
    # Scores of regenerated answers match up to float noise from a different batch make-up.
    for a, b in zip(after, before, strict=True):
        assert a["ref_loss"] == pytest.approx(b["ref_loss"], rel=1e-4)
        assert a["similarity"] == pytest.approx(b["similarity"], abs=1e-4)


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
