"""Online serving: a Ray Serve application with an OpenAI-compatible API in front of the
shared continuous-batching engine, plus the operator commands ``python -m serve.scale`` and
``python -m serve.status``. Its deployment config is ``serve/config.yaml`` (Ray Serve's own
format), used as is by ``serve run``, ``serve deploy`` and the KubeRay RayService."""
