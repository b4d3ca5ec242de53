"""Waiting for the models a Serve config needs (what the RayService's head waits on before
Serve deploys): which models and adapters a config loads, and the wait itself against a
platform root where they appear, with a fake clock.

    pytest tests/cluster/test_serve_configs.py
"""

import json
from pathlib import Path

import yaml

from cluster.serve_configs import SERVE_CONFIG, peak_cpus, required_models, wait_for_models


def test_required_models_are_every_local_source_and_adapter():
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    assert required_models(config) == [
        ("model", "runs/smollm2-support/merged"),
        ("model", "smollm2-135m-instruct"),
        ("adapter", "runs/smollm2-support/adapter"),
    ]
    remote = {
        "applications": [
            {
                "args": {
                    "llm_configs": [
                        {
                            "model_loading_config": {
                                "model_id": "m",
                                "model_source": "s3://bucket/m",
                            },
                            "adapters": {"a": "s3://b/a"},
                        }
                    ]
                }
            }
        ]
    }
    assert required_models(remote) == []


def _model(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))


def test_the_wait_ends_when_the_models_are_stored(platform_root, capsys):
    config = {
        "applications": [
            {
                "args": {
                    "llm_configs": [
                        {
                            "model_loading_config": {
                                "model_id": "m",
                                "model_source": "runs/r/merged",
                            },
                            "adapters": {"support": "runs/r/adapter"},
                        }
                    ]
                }
            }
        ]
    }
    sleeps = []

    def sleep(seconds):  # the fine-tune finishes while we wait
        sleeps.append(seconds)
        _model(platform_root / "runs" / "r" / "merged")
        (platform_root / "runs" / "r" / "adapter").mkdir(parents=True)
        (platform_root / "runs" / "r" / "adapter" / "adapter_config.json").write_text("{}")

    assert wait_for_models(config, interval_s=30, sleep=sleep) == []
    assert sleeps == [30]
    out = capsys.readouterr().out
    assert out.startswith("waiting for 2 model(s): model 'runs/r/merged' is neither")
    assert "pull it first" in out and "adapter 'runs/r/adapter' not found" in out


def test_the_wait_gives_up_at_its_timeout_with_what_is_missing(platform_root):
    config = {
        "applications": [
            {
                "args": {
                    "llm_configs": [
                        {"model_loading_config": {"model_id": "m", "model_source": "absent-model"}}
                    ]
                }
            }
        ]
    }
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    missing = wait_for_models(
        config, timeout_s=60, interval_s=30, clock=lambda: now[0], sleep=sleep
    )
    assert now[0] == 60 and len(missing) == 1 and "'absent-model'" in missing[0]


def test_peak_cpus_counts_every_models_most_replicas():
    shipped = yaml.safe_load(SERVE_CONFIG.read_text())
    # smollm2-support: max_replicas 2 x one {CPU: 1} bundle; smollm2-135m-instruct: 1 x 1;
    # replica actors and the ingress hold none
    assert peak_cpus(shipped) == 3.0
    config = {
        "applications": [
            {
                "args": {
                    "llm_configs": [
                        {
                            "placement_group_config": {"bundles": [{"CPU": 2}, {"CPU": 1}]},
                            "deployment_config": {
                                "autoscaling_config": {"min_replicas": 1, "max_replicas": 3},
                                "ray_actor_options": {"num_cpus": 0.5},
                            },
                        },
                        {
                            "placement_group_config": {"bundles": [{"GPU": 1, "CPU": 1}]},
                            "deployment_config": {"num_replicas": 2},
                        },
                        {},  # no placement, no replicas given: one replica, no CPUs
                    ],
                    "ingress_deployment_config": {"ray_actor_options": {"num_cpus": 1}},
                }
            }
        ]
    }
    assert peak_cpus(config) == 3 * (2 + 1 + 0.5) + 2 * 1 + 0 + 1  # 13.5
