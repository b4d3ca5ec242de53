"""The real SmolLM2-135M-Instruct end to end (slow tier): fine-tuned through ``ray job submit``
with the shipped recipe on a short schedule; evaluated in batch on vLLM (ray.data.llm); served
by the shipped Serve config as a merged model and as base + LoRA adapter to the official
``openai`` client; and the served answers equal the batch answers."""

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


def batch_eval(cluster, name, candidates, *extra, timeout_s=1500):
    """The evaluation job (vLLM through ray.data.llm) on the held-out set; its eval.json."""
    job = submit(
        cluster,
        [
            "python",
            "-m",
            "jobs.evaluate",
            "--config",
            "jobs/configs/evaluate/smollm2_support.yaml",
            f"name={name}",
            f"candidates={candidates}",
            "retention_set=null",
            "bootstrap_samples=200",
            *extra,
        ],
        kind="evaluate",
        working_dir=REPO,
        timeout_s=timeout_s,
    )
    assert job.ok, job.output[-4000:]
    return json.loads((cluster.root / f"reports/eval/{name}/eval.json").read_text())


def test_it_answers_held_out_fact_questions_the_base_model_gets_wrong(
    ray_cluster, tuned, smollm2_dir, tmp_path
):
    company = tmp_path / "company.jsonl"
    lines = (REPO / "data/support_chat/valid.jsonl").read_text().splitlines()
    company.write_text(
        "".join(x + "\n" for x in lines if json.loads(x)["metadata"]["kind"] == "company")
    )
    result = batch_eval(
        ray_cluster,
        "slow-facts",
        f"[{{name: base, model: {smollm2_dir}}}, "
        f"{{name: tuned, model: {smollm2_dir}, adapter: {tuned / 'adapter'}}}]",
        f"eval_set={company}",
        "generation.max_tokens=40",
    )

    def facts(cand):
        return {a["id"]: a["fact"] for a in result["answers"][cand]}

    base, ft = facts("base"), facts("tuned")
    fixed = sum(ft[k] == 1 and base[k] == 0 for k in base)
    assert sum(base.values()) <= 2 and fixed >= 5, (sum(base.values()), sum(ft.values()))


@pytest.fixture(scope="module")
def served(ray_cluster, smollm2_dir, tuned):
    """The shipped config: the merged fine-tune, and the base model with the adapter."""
    cfg = with_overrides(
        load_config(),
        port=PORT,
        llm={
            "placement_group_config": {"bundles": [{"CPU": 0.5}]},
            "deployment_config": {"num_replicas": 1, "autoscaling_config": None},
        },
        args={"api_key_env": "ONPREM_NO_KEY_IN_THIS_TEST"},
    )
    merged, base = cfg["applications"][0]["args"]["llm_configs"]
    merged["model_loading_config"]["model_source"] = str(tuned / "merged")
    base["model_loading_config"]["model_source"] = str(smollm2_dir)
    base["adapters"] = {"support": str(tuned / "adapter")}
    undeploy(ray_cluster)
    deploy(ray_cluster, cfg)
    wait_running(ray_cluster, "llm", timeout_s=900)
    yield f"http://127.0.0.1:{PORT}/v1"
    undeploy(ray_cluster)


SYSTEM = (
    "You are the customer support assistant for Pebblecrest Cycles. Answer briefly and accurately."
)


def test_openai_client_gets_answers_from_base_adapter_and_merged_model(served):
    client = openai.OpenAI(base_url=served, api_key="unused", max_retries=0)
    base = client.chat.completions.create(
        model="smollm2-135m-instruct",
        temperature=0,
        max_tokens=20,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    assert "Paris" in base.choices[0].message.content
    for model in ("smollm2-135m-instruct:support", "smollm2-support"):
        parts = [
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model=model,
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
        assert len(parts) > 3 and "".join(parts).strip(), model


def test_served_answers_equal_batch_answers(ray_cluster, served, smollm2_dir, tuned, tmp_path):
    subset = tmp_path / "subset.jsonl"
    lines = (REPO / "data/support_chat/valid.jsonl").read_text().splitlines()[:8]
    subset.write_text("\n".join(lines) + "\n")
    # One request at a time on both sides (max_num_seqs 1 in the batch engine, concurrency 1
    # against the endpoint): greedy answers of one engine configuration, so they must match.
    result = batch_eval(
        ray_cluster,
        "parity",
        f"[{{name: batch-lora, model: {smollm2_dir}, adapter: {tuned / 'adapter'}}}, "
        f"{{name: served-lora, endpoint: '{served}', model: 'smollm2-135m-instruct:support', "
        "concurrency: 1}, "
        f"{{name: batch-merged, model: {tuned / 'merged'}}}, "
        f"{{name: served-merged, endpoint: '{served}', model: smollm2-support, concurrency: 1}}]",
        f"eval_set={subset}",
        "generation.max_tokens=48",
        "engine.cpus=0.5",
        "engine.engine_kwargs={max_model_len: 2048, enforce_eager: true, max_num_seqs: 1}",
    )
    answers = {c: [a["answer"] for a in rows] for c, rows in result["answers"].items()}
    assert answers["batch-lora"] == answers["served-lora"]
    assert answers["batch-merged"] == answers["served-merged"]
