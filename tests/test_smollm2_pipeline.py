"""The real SmolLM2-135M-Instruct end to end (slow tier): fine-tuned through ``ray job submit``
with the shipped recipe on a short schedule, then served with its adapter to the official
``openai`` client, and evaluated through the endpoint and in-process with the same answers."""

import json

import openai
import pytest

from cluster.submit import submit
from serve.deploy import deploy, load_config, undeploy, wait_running, with_overrides
from tests.conftest import REPO, port, submit_finetune

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PORT = port(8012)
RUN = "smollm2-slow"


@pytest.fixture(scope="module")
def tuned(ray_cluster, smollm2_dir):
    """A short run of the shipped recipe (20 optimizer steps instead of 3 epochs)."""
    job = submit_finetune(
        ray_cluster,
        "jobs/configs/finetune/smollm2_lora.yaml",
        f"run_name={RUN}",
        f"model={smollm2_dir}",
        "train.max_steps=20",
        "train.eval_every=20",
        "checkpoint.every_steps=20",
        timeout_s=1500,
    )
    assert job.ok, job.output[-4000:]
    return ray_cluster.root / "runs" / RUN


def test_eval_loss_falls_clearly_and_progress_is_shown(tuned):
    result = json.loads((tuned / "result.json").read_text())
    assert result["eval_loss"] < 0.75 * result["eval_loss_first"], result
    assert result["train_loss_last"] < result["train_loss_first"]
    assert result["steps"] == 20 and result["world_size"] == 2


def held_out_facts(smollm2_dir, adapter=None, limit=45):
    import re

    import torch

    from cluster.chat import read_chat_jsonl, render
    from cluster.inference.engine import Engine, Request, SamplingParams
    from cluster.inference.loading import load_for_inference

    torch.set_num_threads(2)
    lm = load_for_inference(str(smollm2_dir), {"ft": str(adapter)} if adapter else None)
    engine = Engine(
        lm.model, lm.tokenizer, eos_ids=lm.eos_ids(), max_batch_size=32, context_len=lm.context_len
    )
    exs = [
        e
        for e in read_chat_jsonl(REPO / "data/support_chat/valid.jsonl")
        if e.metadata.get("kind") == "company"
    ][:limit]
    reqs = [
        Request(
            lm.tokenizer(render(lm.tokenizer, e.prompt, generation=True), add_special_tokens=False)[
                "input_ids"
            ],
            SamplingParams(max_tokens=40),
        )
        for e in exs
    ]
    engine.generate(reqs)
    return [
        all(re.search(p, r.text, re.I) for p in e.metadata["facts"])
        for e, r in zip(exs, reqs, strict=True)
    ]


def test_it_answers_held_out_fact_questions_the_base_model_gets_wrong(tuned, smollm2_dir):
    base = held_out_facts(smollm2_dir)
    ft = held_out_facts(smollm2_dir, tuned / "adapter")
    fixed = sum(f and not b for b, f in zip(base, ft, strict=True))
    assert sum(base) <= 2 and fixed >= 5, (sum(base), sum(ft))


@pytest.fixture(scope="module")
def served(ray_cluster, smollm2_dir, tuned):
    cfg = with_overrides(
        load_config(),
        port=PORT,
        args={
            "model": str(smollm2_dir),
            "adapters": {"support": str(tuned / "adapter")},
            "api_key_env": "ONPREM_NO_KEY_IN_THIS_TEST",
        },
    )
    undeploy(ray_cluster)
    deploy(ray_cluster, cfg)
    wait_running(ray_cluster, "llm", timeout_s=600)
    yield f"http://127.0.0.1:{PORT}/v1"
    undeploy(ray_cluster)


SYSTEM = (
    "You are the customer support assistant for Pebblecrest Cycles. Answer briefly and accurately."
)


def test_openai_client_gets_answers_from_base_and_adapter(served):
    client = openai.OpenAI(base_url=served, api_key="unused", max_retries=0)
    base = client.chat.completions.create(
        model="smollm2-135m-instruct",
        temperature=0,
        max_tokens=20,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    assert "Paris" in base.choices[0].message.content
    parts = [
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="support",
            temperature=0,
            max_tokens=40,
            stream=True,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "How long is the warranty on your bikes?"},
            ],
        )
        if c.choices
    ]
    assert len(parts) > 3 and "".join(parts).strip()


def test_served_answers_equal_in_process_answers(ray_cluster, served, smollm2_dir, tuned, tmp_path):
    subset = tmp_path / "subset.jsonl"
    lines = (REPO / "data/support_chat/valid.jsonl").read_text().splitlines()[:12]
    subset.write_text("\n".join(lines) + "\n")
    job = submit(
        ray_cluster,
        [
            "python",
            "-m",
            "jobs.evaluate",
            "--config",
            "jobs/configs/evaluate/served.yaml",
            "name=parity",
            f"eval_set={subset}",
            f"candidates=[{{name: in-process, model: {smollm2_dir}, adapter: {tuned / 'adapter'}}},"
            f" {{name: served, endpoint: '{served}', model: support, concurrency: 1}}]",
        ],
        kind="evaluate",
        working_dir=REPO,
        timeout_s=1200,
    )
    assert job.ok, job.output[-4000:]
    result = json.loads((ray_cluster.root / "reports/eval/parity/eval.json").read_text())
    local = [a["answer"] for a in result["answers"]["in-process"]]
    remote = [a["answer"] for a in result["answers"]["served"]]
    assert local == remote
