"""Reading the cluster's state: what the status and the operators' commands count."""


def test_running_replicas_counts_the_model_deployments_running_replicas():
    from cluster.status import running_replicas

    app = {
        "deployments": {
            "LLMServer:m": {"replicas": [{"state": "RUNNING"}, {"state": "STARTING"}]},
            "LLMServer:n": {"replicas": [{"state": "RUNNING"}]},
            "OpenAiIngress": {"replicas": [{"state": "RUNNING"}]},  # not a model replica
        }
    }
    assert running_replicas(app) == 2
    assert running_replicas(app, "m") == running_replicas(app, "m:support-v2") == 1  # its base's
    assert running_replicas(app, "other") == 0 and running_replicas({}) == 0
