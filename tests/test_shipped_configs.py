"""Every YAML config the project ships loads into its schema (torchtune's habit): job configs
into their pydantic models, Serve configs into Ray Serve's schema and Ray's ``LLMConfig``."""

from pathlib import Path

import pytest
import yaml

from cluster.config import load_config
from cluster.store.pull import PullConfig
from jobs.cost.config import CostConfig
from jobs.eval.config import EvalConfig
from jobs.train.config import FinetuneConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = {
    "pull": PullConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvalConfig,
    "cost": CostConfig,
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


def test_the_8b_configs_fit_together():
    """Pull, fine-tune and serve name the same model and run, on GPUs."""
    from ray.serve.llm import LLMConfig

    pull = load_config(PullConfig, REPO / "jobs/configs/pull/llama3_8b.yaml")
    tune = load_config(FinetuneConfig, REPO / "jobs/configs/finetune/llama3_8b_lora.yaml")
    serve = yaml.safe_load((REPO / "serve/configs/llama3_8b.yaml").read_text())
    [llm] = serve["applications"][0]["args"]["llm_configs"]
    assert pull.source.startswith("hf:meta-llama/") and pull.model_name() == tune.model
    assert llm["model_loading_config"]["model_source"] == tune.model
    assert llm["adapters"]["support"] == f"runs/{tune.run_name}/adapter"
    assert tune.scaling.use_gpu and tune.scaling.num_workers == 8
    assert tune.train.gradient_checkpointing and tune.lora.enabled
    cfg = LLMConfig.model_validate({k: v for k, v in llm.items() if k != "adapters"})
    assert cfg.engine_kwargs["tensor_parallel_size"] == 2
    assert all(b["GPU"] == 1 for b in cfg.placement_group_config["bundles"])
    assert cfg.accelerator_config.kind == "gpu"
