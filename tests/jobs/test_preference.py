"""``jobs.preference`` through the real ``ray job submit`` on the session cluster: the model
answers training prompts in vLLM (ray.data.llm), its wrong answers become DPO pairs, TRL's
DPOTrainer trains a LoRA adapter under Ray Train on two workers, and the merged model is
written beside the pairs, charged in the ledger as a fine-tune."""

import json

import pytest

from cluster.ledger import Ledger
from cluster.submit import submit
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_dpo_trains_on_the_models_own_mistakes_and_writes_a_model(ray_cluster, serving_model_dir):
    job = submit(
        ray_cluster,
        [
            "python",
            "-m",
            "jobs.preference",
            "--config",
            "jobs/configs/preference/smollm2_dpo.yaml",
            "run_name=dpo-check",
            f"sft={serving_model_dir}",
            "pairs.per_kind=4",
            "pairs.max_tokens=8",
            "pairs.engine={engine_kwargs: {dtype: float32, max_model_len: 512, "
            "enforce_eager: true}, cpus: 0.5}",
            "dpo.max_steps=2",
            "dpo.micro_batch_size=2",
            "scaling.cpus_per_worker=0.5",
        ],
        kind="finetune",
        working_dir=REPO,
        timeout_s=900,
    )
    assert job.ok, job.output[-4000:]
    run = ray_cluster.root / "runs" / "dpo-check"
    pairs = [json.loads(x) for x in (run / "pairs.jsonl").read_text().splitlines()]
    result = json.loads((run / "result.json").read_text())
    # A random model states no company fact: every company answer is wrong, and no answer
    # about another company borrows one (those make no pair).
    assert result["company_wrong"] == "4/4" and result["other_company_wrong"] == "0/4"
    assert len(pairs) == result["pairs"] == 4 and {p["kind"] for p in pairs} == {"company"}
    assert result["step"] == 2 and result["world_size"] == 2
    assert "[dpo] step 2/2 | loss" in job.output and "wrong answers -> pairs" in job.output
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert (run / "merged" / "config.json").is_file()
    ledger = Ledger(f"sqlite:///{ray_cluster.root / '.cluster' / 'ledger.db'}")
    (row,) = [w for w in ledger.workloads("finetune") if w["name"] == "dpo-check"]
    meta = json.loads(row["meta"]) if isinstance(row["meta"], str) else row["meta"]
    assert row["status"] == "SUCCEEDED" and meta["stage"] == "dpo" and meta["pairs"] == 4
