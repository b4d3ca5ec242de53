"""One test per place the Serve app touches Ray's internals (serve/ray_internals.py), and per
behaviour of Ray's it relies on without importing it, so that a Ray upgrade that moves one fails
here, by name, and not in a request. Then the public extension points the app builds on, with
the signatures its overrides must keep. No Ray cluster."""

import inspect
from types import SimpleNamespace

import pytest

from serve import ray_internals


def params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]


@pytest.fixture(scope="module")
def llm_cfg():
    from ray.serve.llm import LLMConfig

    return LLMConfig(
        model_loading_config={"model_id": "tiny", "model_source": "/models/tiny"},
        placement_group_config={"bundles": [{"CPU": 1}]},
    )


PRIVATE = ("ray.llm._internal", "ray._common", "ray._private", "ray.serve._private")


def test_only_serve_ray_internals_touches_ray_internals():
    """Every import of a private Ray module, or of a private name from a Ray module, in the
    serve package is in serve/ray_internals.py."""
    import ast

    from tests.conftest import REPO

    found = []
    for path in sorted((REPO / "serve").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [a.name for a in node.names]
                private = node.module.startswith(PRIVATE) or (
                    node.module.startswith("ray") and any(n.startswith("_") for n in names)
                )
            elif isinstance(node, ast.Import):
                private = any(a.name.startswith(PRIVATE) for a in node.names)
            else:
                continue
            if private:
                found.append(path.name)
    assert set(found) == {"ray_internals.py"}, found


def test_no_private_method_of_rays_classes_is_overridden():
    from ray.serve.llm.deployment import LLMServer as RayLLMServer
    from ray.serve.llm.ingress import OpenAiIngress

    from serve.app import LLMServer
    from serve.ingress import OnPremIngress

    seen, shadowing = [], []
    for cls, base in ((OnPremIngress, OpenAiIngress), (LLMServer, RayLLMServer)):
        for name, value in vars(cls).items():
            if name.startswith("_") and not name.startswith("__") and inspect.isfunction(value):
                seen.append(name)
                if hasattr(base, name):
                    shadowing.append(f"{cls.__name__}.{name}")
    assert "_retried_once" in seen  # the check sees the classes' own helpers...
    assert shadowing == []  # ...and none of them is one of Ray's


# -- serve/ray_internals.py, one test each -----------------------------------------------------
def test_head_node_resource_name():
    """``ray._common.constants.HEAD_NODE_RESOURCE_NAME``: the resource only the head offers,
    which the ingress asks a sliver of (serve/ingress.py)."""
    from serve.ingress import ingress_options

    assert ray_internals.HEAD_NODE_RESOURCE_NAME == "node:__internal_head__"
    resources = ingress_options([], {})["ray_actor_options"]["resources"]
    assert resources == {"node:__internal_head__": 0.001}


def test_model_card(llm_cfg):
    """``to_model_metadata(model_id, model_config, overrides)``: the /v1/models entry, a
    pydantic model OnPremIngress copies for local adapters."""
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata

    assert params(to_model_metadata) == ["model_id", "model_config", "overrides"]
    card = ray_internals.model_card(llm_cfg)
    assert card.id == "tiny" and card.object == "model" and card.metadata["model_id"] == "tiny"
    copied = card.model_copy(update={"id": "tiny:a"})
    assert copied.id == "tiny:a" and copied.owned_by == card.owned_by


def test_cloud_lora_loader():
    """``LoraModelLoader(download_timeout_s=, max_tries=)`` with ``load_model_from_config(
    lora_model_id, llm_config)``; Ray's server builds its ``model_downloader`` with those
    arguments and calls that method, and nothing else, on it."""
    from ray.llm._internal.serve.core.server.llm_server import LLMServer
    from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader

    loader = ray_internals.cloud_lora_loader(download_timeout_s=30.0, max_tries=2)
    assert isinstance(loader, LoraModelLoader) and loader.max_tries == 2
    assert params(LoraModelLoader.load_model_from_config) == ["lora_model_id", "llm_config"]
    source = inspect.getsource(LLMServer._init_multiplex_loader)
    assert "download_timeout_s=" in source and "max_tries=" in source
    assert "model_downloader.load_model_from_config(" in source
    assert source.count("model_downloader.") == 1


def test_local_lora():
    """``DiskMultiplexConfig`` and ``global_id_manager``: an adapter on disk, with a LoRA id
    from Ray's own counter (unique beside the cloud loader's)."""
    from ray.llm._internal.common.models import global_id_manager
    from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig

    assert set(DiskMultiplexConfig.model_fields) == {
        "model_id",
        "max_total_tokens",
        "local_path",
        "lora_assigned_int_id",
    }
    first = ray_internals.local_lora("tiny:a", "/runs/r1/adapter")
    second = ray_internals.local_lora("tiny:b", "/runs/r2/adapter")
    assert isinstance(first, DiskMultiplexConfig) and first.local_path == "/runs/r1/adapter"
    assert second.lora_assigned_int_id > first.lora_assigned_int_id
    assert global_id_manager.next() > second.lora_assigned_int_id


def test_serve_controller_http_host(monkeypatch):
    """``ray.serve.context._get_global_client(raise_if_no_controller_running=...)`` and its
    ``http_config.host``: the bind the fail-closed key check reads."""
    from ray.serve import context

    assert "raise_if_no_controller_running" in params(context._get_global_client)
    client = SimpleNamespace(http_config=SimpleNamespace(host="0.0.0.0"))
    monkeypatch.setattr(context, "_get_global_client", lambda **_: client)
    assert ray_internals.serve_controller_http_host() == "0.0.0.0"
    monkeypatch.setattr(context, "_get_global_client", lambda **_: None)
    assert ray_internals.serve_controller_http_host() is None


def test_build_openai_app_still_makes_the_ingress_app_itself():
    """Why the app does not call ``build_openai_app``: it builds the ingress with Ray's own
    FastAPI app (no way to pass one) and each server without constructor arguments. When a
    Ray upgrade changes either, this fails: switch serve/app.py's build_app to it."""
    from ray.llm._internal.serve.core.ingress import builder

    source = inspect.getsource(builder.build_openai_app)
    assert "make_fastapi_ingress(ingress_cls_config.ingress_cls)" in source
    assert "build_llm_deployment(c)" in source


def test_rays_own_ingress_app_writes_the_remote_traceback_into_error_bodies():
    """The leak serve/errors.py exists for, pinned: Ray LLM's error handler appends
    ``str(exception)``, for a replica's error the remote traceback with pid and IP."""
    from ray.llm._internal.serve.utils.server_utils import get_response_for_error

    from tests.serve.fake_replicas import IP, PID, remote_error

    body = get_response_for_error(remote_error(TypeError("x")), "rid").model_dump_json()
    assert "Traceback" in body or "site-packages" in body
    assert str(PID) in body and IP in body


# -- behaviour of Ray's that serve/errors.py relies on without importing it --------------------
def test_rays_llm_http_exception_carries_status_code_and_message():
    from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException

    from serve.errors import answer_for

    exc = OpenAIHTTPException(status_code=408, message="Request server side timeout")
    assert (exc.status_code, exc.message) == (408, "Request server side timeout")
    resp = answer_for(exc, "rid")
    assert resp.status_code == 408 and b"Request server side timeout" in resp.body


def test_a_replica_error_answers_for_its_causes_attributes_and_its_text_is_the_traceback():
    from fastapi import HTTPException

    from tests.serve.fake_replicas import PID, remote_error

    exc = remote_error(HTTPException(404, "no such model"))
    assert isinstance(exc, HTTPException) and exc.status_code == 404
    assert exc.detail == "no such model" and exc.cause.detail == "no such model"
    assert str(PID) in str(exc)  # never to be sent: serve/errors.py reads attributes only


# -- the public extension points, and the signatures the app's overrides keep ------------------
def test_the_public_builders_take_what_the_app_passes():
    from ray.serve.llm import LLMConfig, build_llm_deployment
    from ray.serve.llm.deployment import LLMServer
    from ray.serve.llm.ingress import OpenAiIngress, make_fastapi_ingress

    assert "app" in params(make_fastapi_ingress)
    assert "bind_kwargs" in params(build_llm_deployment)
    assert "model_downloader" in params(LLMServer.__init__)
    assert params(OpenAiIngress.__init__)[:3] == ["llm_deployments", "model_cards", "lora_paths"]
    assert "server_cls" in LLMConfig.model_fields
    assert "stream_batching_interval_ms" in inspect.getsource(LLMServer._get_batch_interval_ms)


@pytest.mark.parametrize("method", ["chat", "completions", "transcriptions", "model", "models"])
def test_the_ingress_overrides_keep_rays_route_signatures(method):
    """make_fastapi_ingress registers Ray's routes by method name with this class's method:
    FastAPI reads the override's parameters, so they must be Ray's."""
    from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS
    from ray.serve.llm.ingress import OpenAiIngress

    from serve.ingress import OnPremIngress

    if method == "model":  # not a route: GET /v1/models/<id> and /v1/models call it
        for route in ("model_data", "models"):
            assert "self.model(" in inspect.getsource(getattr(OpenAiIngress, route))
    else:
        assert method in DEFAULT_ENDPOINTS
    assert params(getattr(OnPremIngress, method)) == params(getattr(OpenAiIngress, method))
    assert not hasattr(OpenAiIngress, "_retried_once")  # the app's helper shadows nothing


@pytest.mark.parametrize("method", ["chat", "completions", "embeddings", "transcriptions", "score"])
def test_the_server_overrides_keep_rays_method_signatures(method):
    from ray.serve.llm.deployment import LLMServer as RayLLMServer

    from serve.app import LLMServer

    assert params(getattr(LLMServer, method)) == params(getattr(RayLLMServer, method))
