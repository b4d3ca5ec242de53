"""Building the app's Ray ``LLMConfig``s from ``serve/config.yaml``, the config edits behind
``python -m serve deploy`` and ``serve.scale``, and reading vLLM's metrics (no Ray)."""

import json

import pytest
import yaml

from cluster.llm import cpu_dtype
from serve.app import AppArgs, llm_config
from serve.deploy import load_config, with_overrides
from serve.scale import scaled
from serve.status import engine_stats, histogram_quantile


@pytest.fixture
def store(platform_root, tiny_model_dir, tiny_adapter_dir):
    import shutil

    from cluster.store.manifest import Manifest, file_entries

    tiny = platform_root / "models" / "tiny"
    shutil.copytree(tiny_model_dir, tiny)
    Manifest(
        name="tiny", source="test", source_kind="path", revision="1", fingerprint="f",
        files=file_entries(tiny),
    ).write(tiny)  # fmt: skip
    shutil.copytree(tiny_adapter_dir, platform_root / "runs" / "r1" / "adapter")
    return platform_root


def test_store_names_and_run_folders_become_folders_with_lora_and_cpu_settings(store):
    cfg, adapters = llm_config(
        {
            "model_loading_config": {"model_id": "m", "model_source": "tiny"},
            "adapters": {"support": "runs/r1"},
            "placement_group_config": {"bundles": [{"CPU": 1}]},
        }
    )
    assert cfg.model_loading_config.model_source == str(store / "models" / "tiny")
    assert adapters == {"support": str(store / "runs" / "r1" / "adapter")}
    rank = json.loads((store / "runs/r1/adapter/adapter_config.json").read_text())["r"]
    assert rank == 4  # vLLM sizes LoRA slots in fixed ranks: the next one up holds it
    assert cfg.engine_kwargs["enable_lora"] is True and cfg.engine_kwargs["max_lora_rank"] == 8
    assert cfg.lora_config.max_num_adapters_per_replica == 1
    # on CPU one LoRA slot more than adapters, left empty (see cluster/llm.py)
    assert cfg.engine_kwargs["max_loras"] == 2
    env = cfg.runtime_env["env_vars"]
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert cfg.accelerator_config.kind == "cpu"
    assert cfg.engine_kwargs["dtype"] == cpu_dtype() and cfg.engine_kwargs["enforce_eager"]


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
AVX512_BF16 = "flags\t\t: fpu avx2 avx512f avx512_bf16\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


def test_the_cpu_dtype_follows_the_cpus_bf16_instructions():
    assert cpu_dtype(AVX2_ONLY) == "float32"  # bf16 emulated: 2.9x slower at 16 sequences
    assert cpu_dtype(AVX512_BF16) == "bfloat16"
    assert cpu_dtype("flags : amx_bf16 amx_tile") == "bfloat16"
    assert cpu_dtype("") == "float32"


def test_the_cpu_dtype_can_be_pinned_and_a_bad_pin_is_named(monkeypatch):
    monkeypatch.setenv("ONPREM_CPU_DTYPE", "bfloat16")
    assert cpu_dtype() == "bfloat16"
    monkeypatch.setenv("ONPREM_CPU_DTYPE", "float32")
    assert cpu_dtype() == "float32"
    monkeypatch.setenv("ONPREM_CPU_DTYPE", "fp8")
    with pytest.raises(ValueError, match=r"ONPREM_CPU_DTYPE='fp8'.*Fix: one of float32, bfloat16"):
        cpu_dtype()


def test_gpu_placement_gets_no_cpu_settings_and_config_values_win(store):
    cfg, _ = llm_config(
        {
            "model_loading_config": {"model_id": "m", "model_source": "tiny"},
            "adapters": {"support": "runs/r1"},
            "placement_group_config": {"bundles": [{"GPU": 1, "CPU": 1}]},
            "runtime_env": {"env_vars": {"X": "1"}},
        }
    )
    assert cfg.runtime_env == {"env_vars": {"X": "1"}} and cfg.accelerator_config.kind == "gpu"
    assert "dtype" not in cfg.engine_kwargs and "enforce_eager" not in cfg.engine_kwargs
    assert cfg.engine_kwargs["max_loras"] == 1
    cpu, _ = llm_config(
        {
            "model_loading_config": {"model_id": "m", "model_source": "tiny"},
            "placement_group_config": {"bundles": [{"CPU": 1}]},
            "runtime_env": {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "4"}},
            "engine_kwargs": {"dtype": "bfloat16"},
        }
    )
    assert cpu.runtime_env["env_vars"]["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert cpu.engine_kwargs["dtype"] == "bfloat16"  # a config's choice wins


def test_the_request_caps_reach_vllms_own_limits_in_each_model_env(store):
    from serve.limits import RequestLimits

    limits = RequestLimits(max_n=3, max_prompts=5)
    gpu, _ = llm_config(
        {
            "model_loading_config": {"model_id": "m", "model_source": "tiny"},
            "placement_group_config": {"bundles": [{"GPU": 1}]},
            "runtime_env": {"env_vars": {"VLLM_MAX_STOP_STRINGS": "8"}},
        },
        limits,
    )
    env = gpu.runtime_env["env_vars"]
    assert env["VLLM_MAX_N_SEQUENCES"] == "3" and env["VLLM_MAX_COMPLETION_PROMPTS"] == "5"
    assert env["VLLM_MAX_STOP_STRINGS"] == "8"  # a model's own setting wins


def test_a_model_not_in_the_store_is_refused_with_the_fix(store):
    from cluster.store import StoreError

    with pytest.raises(StoreError, match="neither in the model store.*pull it first"):
        llm_config({"model_loading_config": {"model_id": "m", "model_source": "nope"}})
    with pytest.raises(StoreError, match="adapter 'runs/none' not found"):
        llm_config(
            {
                "model_loading_config": {"model_id": "m", "model_source": "tiny"},
                "adapters": {"a": "runs/none"},
            }
        )


def test_the_shipped_config_is_ray_serve_llm_config_plus_adapters():
    args = load_config()["applications"][0]["args"]
    parsed = AppArgs.model_validate(args)
    from ray.serve.llm import LLMConfig

    for raw in parsed.llm_configs:
        LLMConfig.model_validate({k: v for k, v in raw.items() if k != "adapters"})
    ids = [c["model_loading_config"]["model_id"] for c in parsed.llm_configs]
    assert ids == ["smollm2-support", "smollm2-135m-instruct"]


def test_the_ingress_sits_on_the_head_unless_the_config_places_it():
    from serve.ingress import ingress_options

    args = load_config()["applications"][0]["args"]
    shipped = ingress_options([], args["ingress_deployment_config"])
    head = {"node:__internal_head__": 0.001}  # Ray's resource on the head node alone
    assert shipped["ray_actor_options"] == {"num_cpus": 0, "resources": head}
    assert shipped["max_ongoing_requests"] == 256 and "autoscaling_config" in shipped
    # ray_actor_options of its own, merged key by key: the head placement stays
    placed = ingress_options([], {"ray_actor_options": {"num_cpus": 1, "memory": 2**30}})
    assert placed["ray_actor_options"] == {"num_cpus": 1, "memory": 2**30, "resources": head}
    # its own resources replace the head placement (never added to it)
    own = ingress_options([], {"ray_actor_options": {"resources": {"gateway": 1}}})
    assert own["ray_actor_options"] == {"num_cpus": 0, "resources": {"gateway": 1}}
    # nested Serve options merge too; num_replicas replaces the default autoscaling
    tuned = ingress_options([], {"autoscaling_config": {"max_replicas": 3}})
    assert tuned["autoscaling_config"]["max_replicas"] == 3
    assert tuned["autoscaling_config"]["target_ongoing_requests"] > 0  # Ray's default kept
    fixed = ingress_options([], {"num_replicas": 2})
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed
    from ray import serve

    class Ingress:
        pass

    for options in (shipped, placed, own, tuned, fixed):  # Serve takes every result
        serve.deployment(Ingress, **options)
    with pytest.raises(ValueError, match="autoscaling"):  # ...and refuses both at once
        serve.deployment(Ingress, num_replicas=2, autoscaling_config={"max_replicas": 3})


def test_overrides_replace_models_and_adapters_and_merge_settings():
    base = load_config()
    cfg = with_overrides(
        base,
        port=9999,
        models={"a": "/m/a", "b": "/m/b"},
        adapters={"x": "/ad/x"},
        llm={"deployment_config": {"num_replicas": 3, "autoscaling_config": None}},
    )
    llms = cfg["applications"][0]["args"]["llm_configs"]
    assert [c["model_loading_config"] for c in llms] == [
        {"model_id": "a", "model_source": "/m/a"},
        {"model_id": "b", "model_source": "/m/b"},
    ]
    assert llms[0]["adapters"] == {"x": "/ad/x"} and "adapters" not in llms[1]
    assert all(c["deployment_config"]["num_replicas"] == 3 for c in llms)
    assert all("autoscaling_config" not in c["deployment_config"] for c in llms)
    assert (
        llms[0]["engine_kwargs"]
        == base["applications"][0]["args"]["llm_configs"][0]["engine_kwargs"]
    )
    assert cfg["http_options"]["port"] == 9999
    assert base["http_options"]["port"] == 8000  # the input is not modified


def test_scaled_overrides_one_model_deployment_and_names_the_choices():
    from ray.serve.schema import ServeDeploySchema

    cfg, model = scaled(
        load_config(), "llm", "smollm2-support", min_replicas=1, max_replicas=4, replicas=None
    )
    app = cfg["applications"][0]
    (dep,) = app["deployments"]
    assert model == "smollm2-support" and dep["name"] == "LLMServer:smollm2-support"
    assert dep["autoscaling_config"]["max_replicas"] == 4
    assert dep["autoscaling_config"]["target_ongoing_requests"] == 6  # the rest is kept
    # args untouched: an args change rebuilds the app and restarts every engine
    assert app["args"] == load_config()["applications"][0]["args"]
    ServeDeploySchema.model_validate(cfg)
    cfg, _ = scaled(cfg, "llm", "smollm2-support", min_replicas=None, max_replicas=None, replicas=2)
    (dep,) = cfg["applications"][0]["deployments"]
    assert dep["num_replicas"] == 2 and dep["autoscaling_config"] is None
    ServeDeploySchema.model_validate(cfg)
    with pytest.raises(ValueError, match="say which with --model"):
        scaled(load_config(), "llm", None, min_replicas=None, max_replicas=None, replicas=2)
    with pytest.raises(ValueError, match="did you mean 'smollm2-support'"):
        scaled(
            load_config(), "llm", "smollm2-suport", min_replicas=1, max_replicas=2, replicas=None
        )
    with pytest.raises(ValueError, match=r"--max \(1\) must be >= --min \(3\)"):
        scaled(
            load_config(), "llm", "smollm2-support", min_replicas=3, max_replicas=1, replicas=None
        )


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 0.0), (0.5, 5.0), (1.0, 10.0), (float("inf"), 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.5)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_engine_stats_are_keyed_by_replica():
    text = "\n".join(
        [
            "# TYPE ray_vllm_num_requests_running gauge",
            'ray_vllm_num_requests_running{ReplicaId="r1",model_name="m",engine="0"} 3.0',
            'ray_vllm_num_requests_running{ReplicaId="r2",model_name="m",engine="0"} 1.0',
            "# TYPE ray_vllm_e2e_request_latency_seconds histogram",
            'ray_vllm_e2e_request_latency_seconds_bucket{ReplicaId="r1",le="1.0"} 4.0',
            'ray_vllm_e2e_request_latency_seconds_bucket{ReplicaId="r1",le="2.0"} 8.0',
            'ray_vllm_e2e_request_latency_seconds_bucket{ReplicaId="r1",le="+Inf"} 8.0',
            'ray_vllm_e2e_request_latency_seconds_count{ReplicaId="r1"} 8.0',
            'ray_vllm_e2e_request_latency_seconds_sum{ReplicaId="r1"} 9.0',
            "# TYPE ray_serve_num_router_requests counter",
            'ray_serve_num_router_requests_total{deployment="x"} 5.0',
        ]
    )
    stats = engine_stats(text + "\n")
    assert set(stats) == {"r1", "r2"}
    assert stats["r1"]["running"] == 3 and stats["r2"]["running"] == 1
    assert stats["r1"]["model"] == "m"
    assert stats["r1"]["e2e_p50_s"] == pytest.approx(1.0)
    assert stats["r1"]["e2e_p95_s"] == pytest.approx(1.9)


def test_config_yaml_has_no_anchors():
    # The file is embedded in k8s/base/rayservice.yaml: plain YAML reads the same everywhere.
    from serve.deploy import CONFIG

    assert "&" not in CONFIG.read_text() and yaml.safe_load(CONFIG.read_text())


def test_local_adapters_load_in_place_and_other_names_from_rays_cloud_loader(monkeypatch):
    import asyncio

    from serve.app import LocalLoraLoader

    loader = LocalLoraLoader({"support": "/runs/r1/adapter"}, download_timeout_s=5, max_tries=1)
    fetched = []

    async def from_cloud(lora_model_id, llm_config):
        fetched.append(lora_model_id)
        return "downloaded"

    monkeypatch.setattr(loader.cloud, "load_model_from_config", from_cloud)

    async def load(name):
        return await loader.load_model_from_config(name, llm_config=None)

    local = asyncio.run(load("tiny:support"))
    assert local.local_path == "/runs/r1/adapter" and local.model_id == "tiny:support"
    assert asyncio.run(load("tiny:support")) is local  # one LoRA id per adapter, kept
    assert asyncio.run(load("tiny:cloud-one")) == "downloaded" and fetched == ["tiny:cloud-one"]
