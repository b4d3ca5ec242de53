"""The store itself: look models up, install them atomically, verify their checksums.

One pull per model name at a time (a file lock beside the model, ``.lock-<name>``, which works
across processes and, on NFS v4, across nodes). Installing moves the old copy aside as
``.old-<name>-*`` before renaming the new one in; a crash between the two renames leaves the old
copy there, and the next look-up or pull of that name puts it back. Models are checked against
their manifest before they are handed out (see :meth:`ModelStore.check`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from cluster import paths
from cluster.store.manifest import MANIFEST, Manifest, VerifiedCache, verify_files

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


class StoreError(RuntimeError):
    """A store operation that cannot go on; the message says what and how to fix it."""


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a store name, or None if it can."""
    if not NAME_RE.match(name):
        return (
            "must be 1-100 lowercase letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return None


class ModelStore:
    """Models in HF format under ``root/<name>/``, each with ``manifest.json``."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).resolve() if root else paths.store_dir()

    def path(self, name: str) -> Path:
        return self.root / name

    def lock(self, name: str) -> FileLock:
        """The lock of one model name, held while a pull checks, builds and installs it and
        while leftovers of that name are cleaned up. Re-entrant within a thread; other threads
        and processes wait."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(self.root / f".lock-{name}", is_singleton=True)

    def has(self, name: str) -> bool:
        return (self.path(name) / MANIFEST).is_file()

    def manifest(self, name: str) -> Manifest | None:
        return Manifest.read(self.path(name)) if self.has(name) else None

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST).is_file())

    def resolve(self, ref: str) -> Path:
        """A model folder from a store name or a path to an HF model folder, checked against
        its manifest when it has one."""
        self._settle(ref)
        if self.has(ref):
            return self.check(self.path(ref))
        for candidate in (Path(ref).expanduser(), paths.resolve(ref)):
            if (candidate / "config.json").is_file():
                return self.check(candidate.resolve())
        known = ", ".join(self.names()) or "(the store is empty)"
        raise StoreError(
            f"model {ref!r} is neither in the model store at {self.root} nor a folder with "
            f"config.json. Fix: pull it first (python -m jobs.pull_model --config "
            f"jobs/configs/pull/smollm2.yaml) or use one of: {known}"
        )

    def resolve_adapter(self, ref: str) -> Path:
        """A LoRA adapter folder: a store entry, a run folder (``runs/<name>`` → its
        ``adapter/``), or a folder holding ``adapter_config.json``."""
        self._settle(ref)
        candidates = [self.path(ref)] if self.has(ref) else []
        # Relative paths mean the platform root (a Serve replica's cwd is not the project).
        for p in (Path(ref).expanduser(), paths.resolve(ref)):
            candidates += [p, p / "adapter"]
        for c in candidates:
            if (c / "adapter_config.json").is_file():
                return self.check(c.resolve())
        raise StoreError(
            f"adapter {ref!r} not found: it is neither a store entry nor a folder holding "
            "adapter_config.json. Fix: give runs/<run_name>/adapter from a fine-tune, or "
            "register the run with register=true"
        )

    def verify(self, name: str) -> list[str]:
        """Re-check every file against the manifest; the differences, or [] when intact."""
        manifest = self.manifest(name)
        if manifest is None:
            raise StoreError(f"model {name!r} is not in the store at {self.root}")
        return verify_files(self.path(name), manifest)

    def _settle(self, name: str, wait_s: float = 60.0) -> None:
        """Before looking ``name`` up: if it is missing because a pull is swapping it (its old
        copy is moved aside for an instant), wait for the swap; after a killed pull, put the
        old copy back."""
        if check_name(name) is not None or self.has(name) or not self.root.is_dir():
            return
        aside = [p for p in self.root.iterdir() if p.name.startswith(f".old-{name}-")]
        if aside and _leftover_of(aside[0].name) == name:
            try:
                with self.lock(name).acquire(timeout=wait_s):
                    self.recover(name)
            except (Timeout, OSError):
                pass  # the not-found error that follows names the fix
            return
        self.recover(name)

    def check(self, folder: Path) -> Path:
        """``folder`` if it matches its manifest (no manifest: nothing to check), else a
        StoreError listing the differences. Sizes are compared every time; a file's sha256 is
        recomputed only when its size, mtime, ctime or inode changed since it last matched
        (remembered in ``<store>/.verified/``), so a served model is hashed once, not per load.
        """
        if not (folder / MANIFEST).is_file():
            return folder
        try:
            manifest = Manifest.read(folder)
        except ValueError as exc:
            raise StoreError(
                f"model folder {folder} has an unreadable {MANIFEST} ({str(exc).splitlines()[0]})"
                f", so it is not loaded. Fix: pull it again (python -m jobs.pull_model ... "
                f"name={folder.name} force=true)"
            ) from None
        cache = VerifiedCache(self.root / ".verified", folder)
        problems = verify_files(folder, manifest, hashed=cache)
        if problems:
            raise StoreError(
                f"model folder {folder} does not match its manifest, so it is not loaded:\n  - "
                + "\n  - ".join(problems)
                + f"\nFix: pull it again (python -m jobs.pull_model ... name={folder.name} "
                "force=true), or re-run the job that wrote it"
            )
        cache.save()
        return folder

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A temporary folder inside the store (same filesystem, so rename is atomic) that is
        removed whatever happens; use :meth:`commit` to move it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, staged: Path, name: str) -> Path:
        """Move a complete staged folder to ``root/name``, replacing any previous version only
        once the new one is whole. A crash leaves either the old or the new model, never half
        (after a kill between the two renames the old one waits as ``.old-<name>-*`` and
        :meth:`recover` puts it back). Call with :meth:`lock` held."""
        if not (staged / MANIFEST).is_file():
            raise StoreError(f"refusing to install {name!r}: the staged folder has no manifest")
        final = self.path(name)
        old = None
        if final.exists():
            old = self.root / f".old-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        try:
            os.replace(staged, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def install(self, name: str, build: Callable[[Path], Manifest]) -> Manifest:
        """Build a model into a staging folder with ``build`` and commit it atomically, holding
        the name's lock (re-entrant: a caller may hold it already)."""
        with self.lock(name):
            self.recover(name)
            with self.staging(name) as tmp:
                manifest = build(tmp)
                manifest.write(tmp)
                self.commit(tmp, name)
        return manifest

    def remove(self, name: str) -> None:
        if self.has(name):
            shutil.rmtree(self.path(name))

    def recover(self, name: str) -> list[str]:
        """Clean up after killed pulls of ``name``, if none is running (its lock is free): put
        a moved-aside old copy back when the new one never landed, then remove staging
        folders. Returns what was restored or removed."""
        try:
            lock = self.lock(name)
            lock.acquire(timeout=0)
        except Timeout:  # a pull of this name is running: its files are not leftovers
            return []
        except OSError:  # a read-only store (a serving node's mount): nothing to clean here
            return []
        done = []
        try:
            for p in sorted(self.root.iterdir()):
                if _leftover_of(p.name) != name:
                    continue
                if p.name.startswith(".old-") and not self.path(name).exists():
                    os.replace(p, self.path(name))
                    done.append(f"{p.name} -> {name}")
                else:
                    shutil.rmtree(p, ignore_errors=True)
                    done.append(p.name)
        finally:
            lock.release()
        return done

    def sweep(self) -> list[str]:
        """:meth:`recover` every name that has leftovers; returns what was done."""
        if not self.root.is_dir():
            return []
        names = {_leftover_of(p.name) for p in self.root.iterdir()} - {None}
        return [line for name in sorted(names) for line in self.recover(name)]


def _leftover_of(entry: str) -> str | None:
    """The model name a ``.tmp-<name>-<hex>[.work]`` or ``.old-<name>-<hex>`` entry belongs to."""
    for prefix in (".tmp-", ".old-"):
        if entry.startswith(prefix):
            stem = entry.removeprefix(prefix).removesuffix(".work")
            name, sep, _ = stem.rpartition("-")
            return name if sep else None
    return None


def describe_hf_folder(folder: Path) -> dict[str, object]:
    """Architecture, dtype and parameter count of an HF model folder, from its config and the
    safetensors headers (no weights are loaded)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise StoreError(
            f"{folder} has no config.json, so it is not a Hugging Face model folder. Fix: point "
            "the source at the folder that holds config.json and the weights, or at a .gguf file"
        )
    config = json.loads(config_path.read_text())
    weights = [p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES]
    if not weights:
        raise StoreError(
            f"{folder} has config.json but no weights (*.safetensors or *.bin). Fix: include "
            "the weight files in the source"
        )
    params = None
    shards = [p for p in weights if p.suffix == ".safetensors"]
    if shards:
        from safetensors import safe_open

        params = 0
        for shard in shards:
            with safe_open(str(shard), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                    shape = fh.get_slice(key).get_shape()
                    count = 1
                    for dim in shape:
                        count *= dim
                    params += count
    archs = config.get("architectures") or [config.get("model_type")]
    return {
        "architecture": archs[0] if archs else None,
        "dtype": config.get("dtype") or config.get("torch_dtype"),
        "parameters": params,
    }
