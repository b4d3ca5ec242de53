"""The KubeRay manifests in k8s/: every RayCluster, RayJob and RayService validates against the
KubeRay v1 CRD schemas with unknown fields rejected; serveConfigV2 is Ray Serve's own schema and
is generated from serve/config.yaml; RayJobs run the local commands; secrets are only referenced;
containers run as non-root.

    pytest tests/test_k8s.py

The CRD schemas live beside the project (../shared/kuberay-crds, see its README); without them
the schema tests are skipped, the rest still run.
"""

import copy
import functools
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from cluster.config import load_config
from cluster.inventory import load_inventory
from cluster.onprem import PROJECT_FILES
from cluster.serve_configs import k8s_serve_config_v2
from cluster.store.pull import PullConfig
from jobs.eval.config import EvalConfig
from jobs.train.config import FinetuneConfig
from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
CRDS = Path(__file__).resolve().parents[2] / "shared" / "kuberay-crds"
KUSTOMIZATIONS = [K8S / "base" / "kustomization.yaml", K8S / "jobs" / "kustomization.yaml"]
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").rglob("kustomization.yaml"))
NOT_IN_A_KUSTOMIZATION = {"kustomization.yaml", "secrets.example.yaml"}
SCHEMA_FILES = {
    "RayCluster": "rayclusters.v1.schema.json",
    "RayJob": "rayjobs.v1.schema.json",
    "RayService": "rayservices.v1.schema.json",
}
JOB_SCHEMAS = {"jobs.pull_model": PullConfig, "jobs.finetune": FinetuneConfig}
JOB_SCHEMAS["jobs.evaluate"] = EvalConfig
SECRET_ENV = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|CREDENTIALS?|LEDGER_URL)($|_)")
SECRET_LOOKING = re.compile(r"\b[0-9a-f]{32,}\b|\bhf_[A-Za-z0-9]{20,}|\bAKIA[0-9A-Z]{16}\b")


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every document of every resource of both kustomizations, as (file: kind/name, doc)."""
    out = []
    for kustomization in KUSTOMIZATIONS:
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            path = kustomization.parent / resource
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    where = f"{path.relative_to(K8S)}: {doc['kind']}/{doc['metadata']['name']}"
                    out.append((where, doc))
    return out


MANIFESTS = manifests()


def of_kind(*kinds: str) -> list[tuple[str, dict[str, Any]]]:
    return [(where, doc) for where, doc in MANIFESTS if doc["kind"] in kinds]


def ids(items: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [where for where, _ in items]


def strict(schema: Any) -> Any:
    """Unknown fields become errors, as kubectl's field validation makes them."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@functools.cache
def validator(kind: str) -> Draft7Validator:
    path = CRDS / SCHEMA_FILES[kind]
    if not path.is_file():
        require(False, f"KubeRay CRD schemas not found at {CRDS} (see the project README)")
    return Draft7Validator(strict(json.loads(path.read_text())))


def schema_errors(doc: dict[str, Any]) -> list[str]:
    errors = validator(doc["kind"]).iter_errors(doc)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def find(node: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a manifest."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found += find(v, key)
    elif isinstance(node, list):
        for v in node:
            found += find(v, key)
    return found


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [spec for spec in find(doc, "spec") if isinstance(spec, dict) and "containers" in spec]


# -- schemas ---------------------------------------------------------------------------------


def test_every_yaml_under_k8s_is_checked():
    listed = {
        (k.parent / r).resolve()
        for k in KUSTOMIZATIONS
        for r in yaml.safe_load(k.read_text())["resources"]
    }
    unlisted = [
        str(p.relative_to(K8S))
        for p in K8S.rglob("*.yaml")
        if p.resolve() not in listed and p.name not in NOT_IN_A_KUSTOMIZATION
    ]
    assert not unlisted, f"not in a kustomization, so never validated: {unlisted}"
    assert {doc["kind"] for _, doc in MANIFESTS} >= {"RayCluster", "RayJob", "RayService"}


@pytest.mark.parametrize(
    "doc", [d for _, d in of_kind(*SCHEMA_FILES)], ids=ids(of_kind(*SCHEMA_FILES))
)
def test_kuberay_manifest_validates_against_its_crd_with_unknown_fields_rejected(doc):
    assert doc["apiVersion"] == "ray.io/v1"
    assert schema_errors(doc) == []


def test_an_unknown_field_is_rejected():
    (_, cluster), *_ = of_kind("RayCluster")
    typo = copy.deepcopy(cluster)
    typo["spec"]["enableInTreeAutoscalling"] = True
    container = typo["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["imagePullPolice"] = "Always"
    errors = schema_errors(typo)
    assert any("enableInTreeAutoscalling" in e for e in errors), errors
    assert any("imagePullPolice" in e for e in errors), errors
    (_, job), *_ = of_kind("RayJob")
    assert schema_errors({**job, "spec": {**job["spec"], "entryPoint": "x"}})


# -- Serve -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc", [d for _, d in of_kind("RayService")], ids=ids(of_kind("RayService"))
)
def test_serve_config_v2_is_a_valid_serve_config_generated_from_serve_config_yaml(doc):
    from ray.serve.schema import ServeDeploySchema

    text = doc["spec"]["serveConfigV2"]
    ServeDeploySchema.model_validate(yaml.safe_load(text))
    assert text == k8s_serve_config_v2(), "stale: run `python -m cluster.onprem k8s-serve`"


def test_k8s_serve_config_differs_from_serve_config_yaml_only_where_it_must():
    base = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    k8s = yaml.safe_load(k8s_serve_config_v2())
    assert k8s["http_options"].pop("host") == "0.0.0.0"
    base["http_options"].pop("host")
    for llm, mine in zip(
        k8s["applications"][0]["args"]["llm_configs"],
        base["applications"][0]["args"]["llm_configs"],
        strict=True,
    ):
        assert llm.pop("placement_group_config")["bundles"] == [{"GPU": 1, "CPU": 1}]
        assert mine.pop("placement_group_config")["bundles"] == [{"CPU": 1}]
        assert mine["engine_kwargs"].pop("enforce_eager") is True
    assert k8s == base
    assert "pod network" in k8s_serve_config_v2(), "say why 0.0.0.0 is safe there"


# -- jobs ------------------------------------------------------------------------------------


def entrypoints() -> list[tuple[str, str]]:
    out = [(where, " ".join(doc["spec"]["entrypoint"].split())) for where, doc in of_kind("RayJob")]
    for where, doc in of_kind("CronJob"):
        for args in find(doc, "args"):
            command = " ".join(" ".join(args).split())
            out.append((where, command.split(" -- ", 1)[1]))
    return out


@pytest.mark.parametrize("entrypoint", [e for _, e in entrypoints()], ids=ids(entrypoints()))
def test_jobs_run_the_local_command_with_a_shipped_config(entrypoint, monkeypatch):
    words = shlex.split(entrypoint)
    assert words[:2] == ["python", "-m"] and words[2].startswith("jobs."), entrypoint
    assert words[3] == "--config", "the config path comes first, overrides after it"
    assert (REPO / words[4]).is_file(), f"{words[4]} does not exist in the repo"
    overrides = words[5:]
    assert all(re.fullmatch(r"[\w.]+=\S+", o) for o in overrides), overrides
    if words[2] in JOB_SCHEMAS:  # overrides must load: a typo would fail on the cluster
        monkeypatch.chdir(REPO)
        load_config(JOB_SCHEMAS[words[2]], words[4], overrides)


def test_rayjobs_select_the_batch_cluster_and_say_how_they_are_submitted():
    (_, cluster), *_ = of_kind("RayCluster")
    for where, doc in of_kind("RayJob"):
        spec = doc["spec"]
        assert spec["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}, where
        assert spec["submissionMode"] == "K8sJobMode", where
        # KubeRay never shuts down a selected cluster; true here would promise what won't happen.
        assert spec["shutdownAfterJobFinishes"] is False, where
        assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"working_dir": "/home/ray/onprem-llm"}


def test_cron_job_submits_to_the_batch_clusters_head_service():
    (_, cluster), *_ = of_kind("RayCluster")
    (where, cron), *_ = of_kind("CronJob")
    command = " ".join(" ".join(find(cron, "args")[0]).split())
    assert f"--address http://{cluster['metadata']['name']}-head-svc:8265" in command, where


# -- network, secrets, users -----------------------------------------------------------------


def test_dashboard_on_0000_only_with_the_pod_network_explained():
    for path in sorted(K8S.rglob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*dashboard-host:", line) and "0.0.0.0" in line:
                above = "\n".join(lines[max(0, i - 4) : i + 1])
                assert "#" in above and "pod network" in above, f"{path}:{i + 1}"
    for where, doc in MANIFESTS:
        for params in find(doc, "rayStartParams"):
            assert all(isinstance(v, str) for v in params.values()), where
            assert "labels" not in params, f"{where}: KubeRay 1.7 rejects rayStartParams labels"


def test_secrets_are_only_referenced():
    assert not of_kind("Secret"), "Secrets never go in a kustomization"
    for where, doc in MANIFESTS:
        for env in find(doc, "env"):
            for var in env:
                if SECRET_ENV.search(var["name"]):
                    assert "value" not in var and "secretKeyRef" in var["valueFrom"], where
        assert not SECRET_LOOKING.search(yaml.safe_dump(doc)), f"{where}: a literal secret?"


def test_secrets_example_defines_every_referenced_secret_with_placeholders():
    example = [d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d]
    defined = {d["metadata"]["name"]: d for d in example}
    referenced = {
        ref["name"]
        for _, doc in MANIFESTS
        for ref in find(doc, "secretKeyRef") + find(doc, "secretRef")
    }
    referenced |= {name for _, doc in MANIFESTS for name in find(doc, "secretName")}
    assert referenced == set(defined)
    for secret in example:
        assert secret["kind"] == "Secret"
        assert all(v.startswith("REPLACE_ME") for v in secret["stringData"].values())


def test_containers_run_as_non_root():
    for where, doc in MANIFESTS:
        for pod in pod_specs(doc):
            ctx = pod.get("securityContext") or {}
            # 1000: the `ray` user of the Ray images; 999: `postgres` of the Postgres image
            assert ctx.get("runAsNonRoot") is True and ctx.get("runAsUser") in (1000, 999), where
            for container in pod["containers"] + pod.get("initContainers", []):
                c_ctx = container.get("securityContext") or {}
                assert c_ctx.get("runAsUser", 1000) != 0, where
                assert c_ctx.get("runAsNonRoot", True) is True, where
        for options in find(doc, "autoscalerOptions"):  # KubeRay adds this sidecar to the head
            assert options["securityContext"]["runAsNonRoot"] is True, where
    assert pod_specs(of_kind("CronJob")[0][1]), "the walk finds pod specs"


def test_gpu_worker_groups_match_the_onprem_fleet():
    inv = load_inventory(fleet="onprem")
    per_node = {n.gpu.model: n.gpu.count for n in inv.nodes if n.gpu}
    nodes = inv.nodes_by_type()
    (where, cluster), *_ = of_kind("RayCluster")
    for group in cluster["spec"]["workerGroupSpecs"]:
        model = group["labels"]["onprem/accelerator"]
        container = group["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(per_node[model]), where
        assert group["maxReplicas"] == nodes[model] and group["minReplicas"] == 0, where
        assert f'"accelerator_type:{model}": 1' in group["rayStartParams"]["resources"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ONPREM_ACCELERATOR_TYPE"] == model and env["OMP_WAIT_POLICY"] == "PASSIVE"
        assert env["ONPREM_ROOT"] == "/mnt/onprem"
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    assert cluster["spec"]["authOptions"] == {
        "mode": "token",
        "secretName": "onprem-ray-auth-batch",
    }


def test_image_holds_what_the_cluster_launcher_syncs():
    copied = set()
    for line in (K8S / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            copied |= set(words[:-1])
    assert copied == set(PROJECT_FILES)


def test_image_is_built_on_rays_llm_image_and_installs_the_cuda_engine():
    """The pods serve and evaluate with vLLM: the image installs the project's `cuda` extra
    against the constraints (the set tests/test_install.py resolves), on a base image whose tag
    is a build argument, and refuses to build with another Ray or vLLM."""
    text = (K8S / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["RAY_IMAGE"] == "rayproject/ray-llm"
    # Ray's tag format: {Ray version}-py{Python}-cu{CUDA}, Ray and Python as pyproject pins.
    assert re.fullmatch(r"2\.60\.0-py311-cu\d{3}", args["RAY_TAG"]), args["RAY_TAG"]
    assert re.search(r"^FROM \$\{RAY_IMAGE\}:\$\{RAY_TAG\}$", text, re.M)
    run = re.search(r"^RUN (.*?)\n\n", text, re.M | re.S).group(1).replace("\\\n", " ")
    words = shlex.split(run.split("&&")[0])
    assert words[:2] == ["pip", "install"] and words[-4:] == [
        "-c",
        "constraints.txt",
        "-e",
        ".[cuda]",
    ]
    assert "vllm.__version__ == '0.29.0'" in run and "ray.__version__ == '2.60.0'" in run


# -- locked down: pods, secrets, network -----------------------------------------------------


def _autoscaled_head(doc: dict[str, Any], pod: dict[str, Any]) -> bool:
    """A head pod of a RayCluster (or a RayService's) with in-tree autoscaling."""
    spec = doc["spec"].get("rayClusterConfig", doc["spec"])
    head = (spec.get("headGroupSpec") or {}).get("template", {}).get("spec")
    return pod is head and spec.get("enableInTreeAutoscaling") is True


def test_pods_are_hardened():
    hardened = 0
    for where, doc in MANIFESTS:
        for pod in pod_specs(doc):
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            # Only autoscaled heads keep a service-account token: the autoscaler sidecar scales
            # the cluster through the Kubernetes API.
            expected = _autoscaled_head(doc, pod)
            assert pod.get("automountServiceAccountToken") is expected, where
            for container in pod["containers"] + pod.get("initContainers", []):
                ctx = container.get("securityContext") or {}
                assert ctx.get("allowPrivilegeEscalation") is False, f"{where} {container['name']}"
                assert ctx.get("capabilities") == {"drop": ["ALL"]}, f"{where} {container['name']}"
                assert ctx.get("runAsNonRoot") is True, f"{where} {container['name']}"
                hardened += 1
        for options in find(doc, "autoscalerOptions"):
            ctx = options["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
    assert hardened >= 10, "the walk finds the containers"


def _secrets_of(node: Any) -> set[str]:
    return {r["name"] for r in find(node, "secretKeyRef") + find(node, "secretRef")}


def test_serve_pods_cannot_read_batch_credentials():
    """The Serve cluster gets the API key, the ledger URL and the Ray token, never the HF or
    AWS keys the batch jobs use; and no pod can read other Secrets through the API (no token)."""
    batch_only = {"onprem-llm-hf", "onprem-llm-aws"}
    (_, service), *_ = of_kind("RayService")
    serve_secrets = _secrets_of(service) | {
        service["spec"]["rayClusterConfig"]["authOptions"]["secretName"]
    }
    assert serve_secrets == {"onprem-llm-api", "onprem-llm-ledger-serve", "onprem-ray-auth-serve"}
    (_, cluster), *_ = of_kind("RayCluster")
    assert batch_only <= _secrets_of(cluster)
    assert not batch_only & serve_secrets


def test_serve_pods_mount_the_shared_volume_read_only():
    (where, service), *_ = of_kind("RayService")
    mounts = [m for pod in pod_specs(service) for c in pod["containers"] for m in c["volumeMounts"]]
    data = [m for m in mounts if m["mountPath"] == "/mnt/onprem"]
    assert len(data) == 2 and all(m.get("readOnly") is True for m in data), where
    (where, cluster), *_ = of_kind("RayCluster")  # the jobs write models, runs and reports
    for pod in pod_specs(cluster):
        for c in pod["containers"]:
            assert all(not m.get("readOnly") for m in c["volumeMounts"]), where


def test_the_ledger_is_postgres_on_every_ray_pod():
    for where, doc in of_kind("RayCluster", "RayService"):
        for pod in pod_specs(doc):
            for container in pod["containers"]:
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                assert env.get("ONPREM_MULTI_NODE") == "1", where  # SQLite is refused
                refs = [r["secretRef"] for r in container.get("envFrom", []) if "secretRef" in r]
                # Serve pods write the ledger as ledger_serve (cluster/ledger_roles.py)
                name = (
                    "onprem-llm-ledger-serve"
                    if doc["kind"] == "RayService"
                    else "onprem-llm-ledger"
                )
                ledger = [r for r in refs if r["name"] == name]
                assert ledger and not ledger[0].get("optional"), f"{where}: the ledger is required"
    (where, sts), *_ = of_kind("StatefulSet")
    assert sts["metadata"]["name"] == "onprem-llm-postgres", where
    (_, svc), *_ = [
        (w, d) for w, d in of_kind("Service") if d["metadata"]["name"] == "onprem-llm-postgres"
    ]
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 5432


def _policies() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"] for _, doc in of_kind("NetworkPolicy")}


def _ports(rule: dict[str, Any]) -> set[int]:
    return {p["port"] for p in rule.get("ports", [])}


def test_network_is_default_deny_with_only_the_needed_allows():
    policies = _policies()
    deny = policies["default-deny"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ingress = [
        (spec["podSelector"], rule)
        for spec in policies.values()
        for rule in spec.get("ingress", [])
    ]
    # What is open from where: every ingress rule names its sources, most name their ports.
    assert all(rule.get("from") for _, rule in ingress), "an ingress rule open to every source"
    serve = policies["allow-serve-api"]
    assert serve["podSelector"] == {"matchLabels": {"onprem/ray-cluster": "serve"}}
    assert _ports(serve["ingress"][0]) == {8000}
    (batch_dash,) = policies["allow-batch-dashboard-from-namespace"]["ingress"]
    assert _ports(batch_dash) == {8265}
    (operator,) = policies["allow-dashboards-from-kuberay-operator"]["ingress"]
    assert _ports(operator) == {8265, 52365}
    scrape = policies["allow-metrics-scrape"]["ingress"][0]
    assert _ports(scrape) == {8080} and "namespaceSelector" in scrape["from"][0]
    for name in ("batch", "serve"):
        intra = policies[f"allow-ray-{name}-intra-cluster"]
        selector = {"matchLabels": {"onprem/ray-cluster": name}}
        assert intra["podSelector"] == selector
        assert intra["ingress"] == [{"from": [{"podSelector": selector}]}]
    # Internet egress (443) only for the batch cluster; the heads reach the API server only.
    open_egress = {
        name
        for name, spec in policies.items()
        for rule in spec.get("egress", [])
        if "to" not in rule
    }
    assert open_egress == {"allow-batch-egress-https"}


def test_pod_labels_match_what_the_policies_select():
    for where, doc in of_kind("RayCluster", "RayService"):
        want = "serve" if doc["kind"] == "RayService" else "batch"
        for template in find(doc, "template"):
            assert template["metadata"]["labels"]["onprem/ray-cluster"] == want, where


# -- overlays: the GPU type and the image ----------------------------------------------------


def _containers(node: Any) -> list[dict[str, Any]]:
    return [c for key in ("containers", "initContainers") for cs in find(node, key) for c in cs]


def render(folder: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize folder` gives, for what these kustomizations use: resources
    (files and folders), JSON 6902 patches, `images:`, `namespace:`. The kubectl test below
    holds this against kustomize itself where kubectl is installed."""
    import jsonpatch

    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in k.get("resources", []):
        path = folder / resource
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = k["namespace"]
    for patch in k.get("patches", []):
        target, ops = patch["target"], yaml.safe_load(patch["patch"])
        for i, doc in enumerate(docs):
            if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]:
                docs[i] = jsonpatch.apply_patch(doc, ops)
    for image in k.get("images", []):
        for container in (c for doc in docs for c in _containers(doc)):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return docs


def _serve_group(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [service] = [d for d in docs if d["kind"] == "RayService"]
    [group] = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return group


@pytest.mark.parametrize("folder", OVERLAYS, ids=lambda p: str(p.relative_to(K8S)))
def test_overlays_validate_against_the_crds_and_serve_and_use_the_overlays_image(folder):
    from ray.serve.schema import ServeDeploySchema

    docs = render(folder)
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    [image] = k["images"]
    want = f"{image['newName']}:{image['newTag']}"
    ray_docs = [d for d in docs if d["kind"] in SCHEMA_FILES]
    assert ray_docs
    for doc in ray_docs:
        assert schema_errors(doc) == [], doc["metadata"]["name"]
        if doc["kind"] == "RayService":
            ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    project = [c["image"] for d in docs for c in _containers(d) if "postgres" not in c["image"]]
    assert project and set(project) == {want}


@pytest.mark.parametrize("gpu", ["h100", "l40s"])
def test_the_gpu_overlay_puts_the_serve_workers_on_that_gpu(gpu):
    group = _serve_group(render(K8S / "overlays" / gpu))
    model = {"h100": "H100", "l40s": "L40S"}[gpu]
    spec = group["template"]["spec"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert group["groupName"] == gpu and group["labels"]["onprem/accelerator"] == model
    assert group["rayStartParams"]["resources"] == f"'{{\"accelerator_type:{model}\": 1}}'"
    assert spec["nodeSelector"]["nvidia.com/gpu.product"].startswith(f"NVIDIA-{model}")
    assert env["ONPREM_ACCELERATOR_TYPE"] == model
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # Only the GPU type changes: the Serve config and the rest of the service are the base's.
    base = render(K8S / "base")
    [mine] = [d for d in render(K8S / "overlays" / gpu) if d["kind"] == "RayService"]
    [theirs] = [d for d in base if d["kind"] == "RayService"]
    assert mine["spec"]["serveConfigV2"] == theirs["spec"]["serveConfigV2"]


def test_an_images_override_reaches_every_ray_pod(tmp_path):
    """A copy of the overlay with another image: every Ray container (heads, workers, the wait
    for models, RayJob submitters, the CronJob) takes it; Postgres keeps its own."""
    overlay = tmp_path / "k8s" / "overlays" / "mine"
    shutil.copytree(K8S, tmp_path / "k8s", dirs_exist_ok=True)
    shutil.copytree(K8S / "overlays" / "h100", overlay)
    k = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    k["images"][0].update(newName="registry.example.com/llm/onprem-llm", newTag="1.2.3")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(k))
    images = {c["image"] for d in render(overlay) for c in _containers(d)}
    assert images == {"registry.example.com/llm/onprem-llm:1.2.3", "postgres:16.4"}


def test_the_overlay_jobs_run_shipped_configs_on_their_gpu(monkeypatch):
    monkeypatch.chdir(REPO)
    for gpu, model in (("h100", "H100"), ("l40s", "L40S")):
        docs = render(K8S / "overlays" / gpu / "jobs")
        assert {d["metadata"]["labels"]["onprem/job"] for d in docs} == {
            "pull",
            "finetune",
            "evaluate",
            "cost-report",
        }
        for doc in docs:
            assert schema_errors(doc) == [], doc["metadata"]["name"]
            words = shlex.split(doc["spec"]["entrypoint"])
            if words[2] in JOB_SCHEMAS:
                load_config(JOB_SCHEMAS[words[2]], words[4], words[5:])
        [tune] = [d for d in docs if d["metadata"]["name"] == "finetune"]
        cfg = load_config(FinetuneConfig, *_config_and_overrides(tune["spec"]["entrypoint"]))
        node = next(n for n in load_inventory(fleet="onprem").nodes if n.accelerator_type == model)
        assert cfg.scaling.accelerator_type == model
        assert cfg.scaling.num_workers == node.gpu.count  # one whole server of that GPU


def _config_and_overrides(entrypoint: str) -> tuple[str, list[str]]:
    words = shlex.split(entrypoint)
    return words[4], words[5:]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("folder", [K8S / "base", *OVERLAYS], ids=lambda p: str(p.relative_to(K8S)))
def test_kustomize_itself_renders_what_the_tests_check(folder):
    out = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    theirs = sorted((d for d in yaml.safe_load_all(out.stdout) if d), key=key)
    assert theirs == sorted(render(folder), key=key)


def test_the_serve_head_waits_for_the_models_of_its_config():
    [(_, service)] = of_kind("RayService")
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    [wait] = head["initContainers"]
    assert wait["command"] == [
        "python",
        "-m",
        "cluster.onprem",
        "wait-models",
        "--config",
        "serve/config.yaml",
    ]
    env = {e["name"]: e["value"] for e in wait["env"]}
    assert env["ONPREM_ROOT"] == "/mnt/onprem"
    assert {"name": "data", "mountPath": "/mnt/onprem"} in wait["volumeMounts"]
    assert wait["image"] == head["containers"][0]["image"]


def test_the_guides_describe_the_finetune_rayjob_as_it_runs():
    """The masterclass (both languages) and docs/onprem.md quote the RayJob's entrypoint."""
    [(_, job)] = [(w, d) for w, d in of_kind("RayJob") if d["metadata"]["name"] == "finetune"]
    entry = " ".join(job["spec"]["entrypoint"].split())
    for guide in ("masterclass.md", "masterclass.es.md", "onprem.md"):
        text = re.sub(r"\s*\\\n\s*", " ", (REPO / "docs" / guide).read_text())
        assert entry in " ".join(text.split()), guide


# -- who reaches what: the policies evaluated as a CNI would --------------------------------

NAMESPACE = "onprem-llm"
SERVE_HEAD = {"ray.io/node-type": "head", "onprem/ray-cluster": "serve"}
BATCH_HEAD = {"ray.io/node-type": "head", "onprem/ray-cluster": "batch"}
OPERATOR = {"app.kubernetes.io/name": "kuberay-operator"}
SUBMITTER = {"batch.kubernetes.io/job-name": "pull-abc"}  # a RayJob submitter or CronJob pod
API_SERVER = "192.0.2.1"  # the placeholder of allow-heads-to-kubernetes-api


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels AND matchExpressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        has, value = e["key"] in labels, labels.get(e["key"])
        ok = {
            "In": has and value in e.get("values", []),
            "NotIn": not has or value not in e.get("values", []),
            "Exists": has,
            "DoesNotExist": not has,
        }[e["operator"]]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict[str, Any], labels: dict[str, str], namespace: str, ip: str) -> bool:
    import ipaddress

    if "ipBlock" in peer:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": namespace}
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif namespace != NAMESPACE:  # a bare podSelector means this namespace
        return False
    return _selects(peer.get("podSelector") or {}, labels)


def _allowed(direction: str, pod: dict[str, str], peer: tuple[dict, str, str], port: int) -> bool:
    """Whether some policy of the namespace allows ``direction`` traffic of ``pod`` to/from
    ``peer`` (labels, namespace, IP) on ``port``; default-deny selects every pod."""
    key, side = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for spec in _policies().values():
        if direction not in spec["policyTypes"] or not _selects(spec["podSelector"], pod):
            continue
        for rule in spec.get(key, []):
            ports = _ports(rule)
            if ports and port not in ports:
                continue
            peers = rule.get(side)
            if peers is None or any(_peer_matches(p, *peer) for p in peers):
                return True
    return False


def reaches(
    src: dict[str, str], dst: dict[str, str], port: int, *, src_ns: str = NAMESPACE
) -> bool:
    """A pod of this namespace (or of ``src_ns``) can open ``dst:port`` (a pod here)."""
    egress = src_ns != NAMESPACE or _allowed("Egress", src, (dst, NAMESPACE, "10.0.0.9"), port)
    return egress and _allowed("Ingress", dst, (src, src_ns, "10.0.0.8"), port)


def reaches_outside(src: dict[str, str], ip: str, port: int) -> bool:
    return _allowed("Egress", src, ({}, "elsewhere", ip), port)


def test_only_the_operator_reaches_the_serve_heads_dashboard():
    serve_pod = {"onprem/ray-cluster": "serve"}
    batch_pod = {"onprem/ray-cluster": "batch"}
    for port in (8265, 52365):
        assert reaches(OPERATOR, SERVE_HEAD, port, src_ns="kuberay-system")
        assert reaches(OPERATOR, BATCH_HEAD, port, src_ns="kuberay-system")
        # the operator's label is not enough: any namespace can set it
        assert not reaches(OPERATOR, SERVE_HEAD, port, src_ns="some-team")
        assert not reaches(OPERATOR, SERVE_HEAD, port)
        for src in (batch_pod, BATCH_HEAD, SUBMITTER, {}):
            assert not reaches(src, SERVE_HEAD, port), (src, port)
    # the batch head's Jobs API: from job submitters and the batch cluster, not from Serve pods
    assert reaches(SUBMITTER, BATCH_HEAD, 8265) and reaches(batch_pod, BATCH_HEAD, 8265)
    assert not reaches(serve_pod, BATCH_HEAD, 8265) and not reaches(SERVE_HEAD, BATCH_HEAD, 8265)
    assert not reaches(SUBMITTER, BATCH_HEAD, 8265, src_ns="some-team")
    # a Ray cluster's own pods still reach their head on every port
    assert reaches(serve_pod, SERVE_HEAD, 8265) and reaches(serve_pod, SERVE_HEAD, 6379)
    # the API is open to clients (the key still applies)
    assert reaches(SUBMITTER, SERVE_HEAD, 8000)


def test_each_ray_cluster_has_its_own_token():
    (_, cluster), *_ = of_kind("RayCluster")
    (_, service), *_ = of_kind("RayService")
    batch = cluster["spec"]["authOptions"]["secretName"]
    serve = service["spec"]["rayClusterConfig"]["authOptions"]["secretName"]
    assert batch != serve
    (where, cron), *_ = of_kind("CronJob")
    assert _secrets_of(cron) == {batch}, f"{where}: submits to the batch cluster"
    assert batch not in _secrets_of(service) and serve not in _secrets_of(cluster)


def test_heads_reach_only_the_api_server_outside_and_serve_pods_nothing():
    for head in (SERVE_HEAD, BATCH_HEAD):
        assert reaches_outside(head, API_SERVER, 6443) and reaches_outside(head, API_SERVER, 443)
    for pod in (SERVE_HEAD, {"onprem/ray-cluster": "serve"}):
        for ip, port in (("1.1.1.1", 443), ("8.8.8.8", 6443), ("10.1.2.3", 443)):
            assert not reaches_outside(pod, ip, port), (pod, ip, port)
    # the batch cluster pulls models and prices over HTTPS, and DNS works for everyone
    assert reaches_outside({"onprem/ray-cluster": "batch"}, "1.1.1.1", 443)
    text = (K8S / "base" / "networkpolicy.yaml").read_text()
    assert "SET PER CLUSTER" in text and "kubectl get endpointslices" in text


def test_the_operator_rule_is_pinned_to_a_namespace():
    peers = [
        peer
        for spec in _policies().values()
        for rule in spec.get("ingress", [])
        for peer in rule["from"]
        if (peer.get("podSelector") or {}).get("matchLabels") == OPERATOR
    ]
    assert peers, "the operator is let in somewhere"
    pinned = {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}}
    assert all(peer.get("namespaceSelector") == pinned for peer in peers), peers


# -- read-only images and root filesystems ----------------------------------------------------


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for pod in pod_specs(doc) for c in pod["containers"] + pod.get("initContainers", [])]


def _scratch(pod: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """The container's mount paths backed by an emptyDir of its pod."""
    empty = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    return {m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in empty}


def test_root_filesystems_are_read_only_with_writable_scratch():
    checked = 0
    for where, doc in MANIFESTS:
        for pod in pod_specs(doc):
            for container in pod["containers"]:
                ctx = container["securityContext"]
                assert ctx.get("readOnlyRootFilesystem") is True, f"{where} {container['name']}"
                scratch = _scratch(pod, container)
                if doc["kind"] in ("RayCluster", "RayService"):  # Ray, vLLM, Triton write here
                    assert {"/tmp", "/home/ray/.cache"} <= scratch, where
                    env = {e["name"]: e.get("value") for e in container["env"]}
                    assert env["TRITON_CACHE_DIR"].startswith("/home/ray/.cache/"), where
                elif doc["kind"] != "StatefulSet":  # submitters: `ray job submit` zips to /tmp
                    assert "/tmp" in scratch, where
                checked += 1
    assert checked >= 11, "the walk finds the containers"


def test_the_image_code_is_owned_by_root():
    lines = [line.strip() for line in (K8S / "Dockerfile").read_text().splitlines()]
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    users = [(i, line.split()[1]) for i, line in enumerate(lines) if line.startswith("USER ")]
    assert copies and not any("--chown" in lines[i] for i in copies), "code owned by root"
    assert any(u == "root" and i < copies[0] for i, u in users), "copied and installed as root"
    assert users[-1][1] == "1000", "runs as the ray user"
