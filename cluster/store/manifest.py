"""``manifest.json``: where a stored model came from, and every file's size and sha256."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

MANIFEST = "manifest.json"
_CHUNK = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FileEntry(BaseModel):
    path: str
    size: int
    sha256: str


class Manifest(BaseModel):
    name: str
    source: str = Field(description="the source spec the model was pulled from")
    source_kind: str
    revision: str = Field(description="pinned revision: version, commit sha or content hash")
    fingerprint: str = Field(description="identity of the source; equal means nothing to pull")
    format: str = "hf-safetensors"
    architecture: str | None = None
    parameters: int | None = None
    dtype: str | None = None
    converted_from: dict[str, Any] | None = None
    base_model: str | None = Field(default=None, description="for fine-tuned models")
    files: list[FileEntry]
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    extra: dict[str, Any] = Field(default_factory=dict)

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def write(self, folder: Path) -> Path:
        out = folder / MANIFEST
        out.write_text(json.dumps(self.model_dump(), indent=2) + "\n")
        return out

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        return cls.model_validate_json((folder / MANIFEST).read_text())


def file_entries(folder: Path) -> list[FileEntry]:
    """Size and sha256 of every file under ``folder`` except the manifest, sorted by path."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == MANIFEST:
            continue
        entries.append(FileEntry(path=rel, size=path.stat().st_size, sha256=sha256_file(path)))
    return entries


class VerifiedCache:
    """Which files of one folder last matched their manifest sha256, keyed by what changes
    when a file is written (size, mtime, ctime, inode), so an unchanged file is not hashed
    again. Kept in ``cache_dir`` (outside the model folder, which holds listed files only)."""

    def __init__(self, cache_dir: Path, folder: Path):
        key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
        self.path = cache_dir / f"{key}.json"
        try:
            self.entries: dict[str, list[Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    @staticmethod
    def _stamp(st: os.stat_result, sha256: str) -> list[Any]:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha256]

    def matches(self, rel: str, st: os.stat_result, sha256: str) -> bool:
        return self.entries.get(rel) == self._stamp(st, sha256)

    def remember(self, rel: str, st: os.stat_result, sha256: str) -> None:
        self.entries[rel] = self._stamp(st, sha256)
        self.changed = True

    def save(self) -> None:
        """Write the cache (temp file, then rename); a read-only store just hashes again."""
        if not self.changed:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as fh:
                json.dump(self.entries, fh)
            os.replace(tmp, self.path)


def verify_files(
    folder: Path, manifest: Manifest, hashed: VerifiedCache | None = None
) -> list[str]:
    """Every difference between the folder and its manifest, as readable lines (empty = OK).
    With ``hashed``, files whose stat is unchanged since they last matched are not re-hashed."""
    problems = []
    listed = {f.path for f in manifest.files}
    for entry in manifest.files:
        path = folder / entry.path
        if path.is_symlink() or not path.is_file():
            problems.append(f"{entry.path}: missing" + (" (a symlink)" * path.is_symlink()))
            continue
        st = path.stat()
        if st.st_size != entry.size:
            problems.append(f"{entry.path}: size {st.st_size} != {entry.size}")
        elif hashed is not None and hashed.matches(entry.path, st, entry.sha256):
            continue
        elif sha256_file(path) != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the manifest")
        elif hashed is not None:
            hashed.remember(entry.path, st, entry.sha256)
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel}: not in the manifest")
    return problems
