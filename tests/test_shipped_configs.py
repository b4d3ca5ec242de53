"""Every YAML config the project ships loads into its schema (torchtune's habit): job configs
into their pydantic models, Serve configs into Ray Serve's schema and Ray's ``LLMConfig``."""

from pathlib import Path

import pytest
import yaml

from cluster.config import load_config
from cluster.gpu_fit import LLAMA_3_1_8B, DoesNotFit, per_gpu_gb, tensor_parallel
from cluster.inventory import load_inventory
from cluster.serve_configs import SERVE_8B, dump_serve_8b, write_serve_8b
from cluster.store.pull import PullConfig
from jobs.cost.config import CostConfig
from jobs.eval.config import EvalConfig
from jobs.prefs.config import PreferenceConfig
from jobs.sweep.config import TuneConfig
from jobs.train.config import FinetuneConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = {
    "pull": PullConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvalConfig,
    "cost": CostConfig,
    "tune": TuneConfig,
    "preference": PreferenceConfig,
}


def shipped() -> list[Path]:
    return sorted((REPO / "jobs" / "configs").rglob("*.yaml"))


def test_every_config_folder_has_a_schema():
    folders = {p.parent.name for p in shipped()}
    assert folders <= set(SCHEMAS), f"no schema registered for {folders - set(SCHEMAS)}"


@pytest.mark.parametrize("path", shipped(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_loads(path):
    cfg = load_config(SCHEMAS[path.parent.name], path)
    assert cfg is not None
    assert "python -m jobs." in path.read_text(), "each config's header shows how to run it"


def shipped_serve() -> list[Path]:
    return sorted((REPO / "serve").rglob("*.yaml"))


@pytest.mark.parametrize("path", shipped_serve(), ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_serve_config_is_a_serve_config_of_ray_llm_configs(path):
    from ray.serve.llm import LLMConfig
    from ray.serve.schema import ServeDeploySchema

    from serve.app import AppArgs

    raw = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(raw)
    for app in raw["applications"]:
        for llm in AppArgs.model_validate(app["args"]).llm_configs:
            cfg = LLMConfig.model_validate({k: v for k, v in llm.items() if k != "adapters"})
            tp = int(cfg.engine_kwargs.get("tensor_parallel_size", 1))
            bundles = cfg.placement_group_config["bundles"]
            assert len(bundles) == tp, f"{path.name}: one placement bundle per tensor-parallel rank"
    assert "serve deploy" in path.read_text(), "each config's header shows how to run it"


@pytest.mark.parametrize("gpu", ["H100", "L40S"])
def test_the_8b_configs_fit_together(gpu):
    """Pull, fine-tune, serve and evaluate name the same model and run, on GPUs."""
    from ray.serve.llm import LLMConfig

    pull = load_config(PullConfig, REPO / "jobs/configs/pull/llama3_8b.yaml")
    tune = load_config(FinetuneConfig, REPO / "jobs/configs/finetune/llama3_8b_lora.yaml")
    evaluate = load_config(EvalConfig, REPO / "jobs/configs/evaluate/llama3_8b_support.yaml")
    serve = yaml.safe_load(SERVE_8B[gpu].read_text())
    [llm] = serve["applications"][0]["args"]["llm_configs"]
    assert pull.source.startswith("hf:meta-llama/") and pull.model_name() == tune.model
    assert llm["model_loading_config"]["model_source"] == tune.model
    assert llm["adapters"]["support"] == f"runs/{tune.run_name}/adapter"
    assert tune.scaling.use_gpu and tune.scaling.num_workers == 8
    assert tune.train.gradient_checkpointing and tune.lora.enabled
    assert {c.model for c in evaluate.candidates} == {tune.model}
    assert [c.adapter for c in evaluate.candidates] == [None, f"runs/{tune.run_name}/adapter"]
    cfg = LLMConfig.model_validate({k: v for k, v in llm.items() if k != "adapters"})
    assert cfg.accelerator_config.kind == "gpu" and cfg.accelerator_type == gpu
    assert all(b["GPU"] == 1 for b in cfg.placement_group_config["bundles"])


def test_the_8b_serve_configs_are_generated_from_the_inventory():
    """Each GPU type's file is the generator's output for the committed inventory, and its
    tensor parallel is what the memory arithmetic gives: 1 on an 80 GB H100, 2 on a 48 GB L40S
    (weights 16.06 GB + 262,144 tokens x 128 KiB = 34.36 GB of KV cache = 50.42 GB, against
    80 x 0.9 - 3 = 69.0 GB and 48 x 0.9 - 3 = 40.2 GB usable per GPU)."""
    inv = load_inventory(fleet="onprem")
    for gpu, path in SERVE_8B.items():
        assert path.read_text() == dump_serve_8b(inv, gpu), (
            "stale: python -m cluster.onprem serve-8b"
        )
    assert write_serve_8b(check=True)
    tps = {}
    for gpu, path in SERVE_8B.items():
        [llm] = yaml.safe_load(path.read_text())["applications"][0]["args"]["llm_configs"]
        tps[gpu] = llm["engine_kwargs"]["tensor_parallel_size"]
        auto = llm["deployment_config"]["autoscaling_config"]
        node = next(n for n in inv.nodes if n.gpu and n.gpu.model == gpu)
        assert auto["max_replicas"] * tps[gpu] == node.gpu.count  # one server's worth
        assert yaml.safe_load(path.read_text())["http_options"]["host"] == inv.head.address
    assert tps == {"H100": 1, "L40S": 2}
    assert round(per_gpu_gb(LLAMA_3_1_8B, 1), 2) == 50.42


def test_tensor_parallel_is_the_smallest_that_fits_and_a_misfit_says_so():
    assert tensor_parallel(LLAMA_3_1_8B, gpu_memory_gb=80, gpus_per_node=8) == 1
    assert tensor_parallel(LLAMA_3_1_8B, gpu_memory_gb=48, gpus_per_node=4) == 2
    # 24 GB cards: 50.42 / 4 = 12.6 <= 24 x 0.9 - 3 = 18.6, while 25.2 at tp 2 does not fit.
    assert tensor_parallel(LLAMA_3_1_8B, gpu_memory_gb=24, gpus_per_node=4) == 4
    with pytest.raises(DoesNotFit, match="needs 25.2 GB per GPU even at tensor parallel 2"):
        tensor_parallel(LLAMA_3_1_8B, gpu_memory_gb=24, gpus_per_node=2)


def test_the_8b_evaluation_fits_every_gpu_type_of_the_inventory():
    """One engine per GPU holds the evaluation's whole KV cache (max_num_seqs x max_model_len)
    on every GPU type of the fleet, and the engines fit in one server."""
    evaluate = load_config(EvalConfig, REPO / "jobs/configs/evaluate/llama3_8b_support.yaml")
    kwargs = evaluate.engine.engine_kwargs
    tokens = kwargs["max_num_seqs"] * kwargs["max_model_len"]
    assert evaluate.engine.gpus == 1
    for node in load_inventory(fleet="onprem").nodes:
        if node.gpu:
            tp = tensor_parallel(LLAMA_3_1_8B, node.gpu.memory_gb, node.gpu.count, tokens)
            assert kwargs["tensor_parallel_size"] == tp, node.name
            assert evaluate.engine.replicas * tp <= node.gpu.count, node.name
