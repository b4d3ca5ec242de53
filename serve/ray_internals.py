"""Every place the Serve app touches Ray's internals, and nowhere else: a Ray upgrade that moves
one of them fails its own test in ``tests/serve/test_ray_internals.py`` instead of a request.

The rest of the app uses Ray 2.60's public surface: ``ray.serve.llm.LLMConfig`` (with
``server_cls``), ``ray.serve.llm.build_llm_deployment`` (with ``bind_kwargs``),
``ray.serve.llm.ingress.OpenAiIngress`` and ``make_fastapi_ingress(cls, app=...)``,
``ray.serve.llm.deployment.LLMServer`` (its ``model_downloader`` argument and its public
methods), ``ray.serve.llm.openai_api_models``.

Why not ``build_openai_app(ingress_cls=..., ingress_cls_config=...)``: in Ray 2.60 it makes the
ingress's FastAPI app itself (Ray's ``init()``: an error handler that writes ``str(exception)``,
the remote traceback of a Ray error, into every error body, and a CORS layer that any
middleware added to it sits outside of, so a key check would refuse browsers' preflights), and
it binds each model's server with no constructor arguments (this app's server takes its LoRA
folders and ledger settings). ``make_fastapi_ingress`` takes the app; the app passes its own
(``serve/ingress.py``). A test notices when ``build_openai_app`` starts taking one.
"""

from __future__ import annotations

from typing import Any

# Ray's resource that only the head node has: the ingress asks for a sliver of it to sit
# beside the head's proxy (serve/ingress.py).
from ray._common.constants import HEAD_NODE_RESOURCE_NAME

__all__ = [
    "HEAD_NODE_RESOURCE_NAME",
    "cloud_lora_loader",
    "local_lora",
    "model_card",
    "serve_controller_http_host",
]


def model_card(llm_config: Any) -> Any:
    """The ``/v1/models`` entry of a model, as Ray's own builder makes it (no public
    function in Ray 2.60)."""
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata

    return to_model_metadata(llm_config.model_id, llm_config)


def cloud_lora_loader(**kwargs: Any) -> Any:
    """Ray's LoRA loader (downloads ``<dynamic_lora_loading_path>/<adapter>`` into a disk
    cache), built with the arguments ``LLMServer`` gives a ``model_downloader``
    (``download_timeout_s``, ``max_tries``)."""
    from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader

    return LoraModelLoader(**kwargs)


def local_lora(lora_model_id: str, folder: str) -> Any:
    """What a loader hands Ray's server for an adapter already on disk: the folder, and a
    LoRA id from Ray's own counter (vLLM needs one unique per adapter in the process, so it
    must come from the counter Ray's loader uses for cloud adapters)."""
    from ray.llm._internal.common.models import global_id_manager
    from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig

    return DiskMultiplexConfig(
        model_id=lora_model_id,
        max_total_tokens=None,
        local_path=folder,
        lora_assigned_int_id=global_id_manager.next(),
    )


def serve_controller_http_host() -> str | None:
    """The host the running Serve controller's HTTP proxies bind (None without a controller).
    Ray 2.60 has no public getter for the deployed ``http_options``."""
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    return client.http_config.host if client is not None else None
