"""``manifest.json``: where a stored model came from, and every file's size and sha256."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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


def verify_files(folder: Path, manifest: Manifest) -> list[str]:
    """Every difference between the folder and its manifest, as readable lines (empty = OK)."""
    problems = []
    listed = {f.path for f in manifest.files}
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
        elif path.stat().st_size != entry.size:
            problems.append(f"{entry.path}: size {path.stat().st_size} != {entry.size}")
        elif sha256_file(path) != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the manifest")
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel}: not in the manifest")
    return problems
