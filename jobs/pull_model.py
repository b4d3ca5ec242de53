"""Pull a model into the model store.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.pull_model --config jobs/configs/pull/smollm2.yaml
    python -m jobs.pull_model --config jobs/configs/pull/smollm2.yaml --verify
    python -m jobs.pull_model source=hf:HuggingFaceTB/SmolLM2-135M-Instruct@main

Exit codes: 0 done (pulled, unchanged or verified), 1 the pull failed, 2 bad config or source.
"""

from __future__ import annotations

import logging
import sys

from cluster.config import cli_config
from cluster.logs import setup_logging
from cluster.store.pull import PullConfig, pull
from cluster.store.sources import SourceError
from cluster.store.store import StoreError
from cluster.usage import track


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(PullConfig, "Pull a model into the model store.", argv)
    log = logging.getLogger("jobs.pull_model")
    name = cfg.model_name()
    try:
        with track("pull", name, meta={"source": cfg.source}) as run:
            result = pull(cfg)
            run.meta.update(action=result.action, bytes=result.manifest.total_bytes())
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = result.manifest
    log.info(
        "%s %s: %s parameters, %d files, %.1f MB, revision %s, in %.1f s -> %s",
        result.action,
        name,
        f"{m.parameters:,}" if m.parameters else "?",
        len(m.files),
        m.total_bytes() / 1e6,
        m.revision,
        result.seconds,
        result.path,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
