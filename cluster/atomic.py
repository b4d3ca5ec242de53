"""Write files and folders so that a reader sees the old version or the new one, never half.

Every job output goes through here: the new version is written under a hidden temporary name
beside the target and renamed into place only when complete; a failure removes it and leaves
the old version untouched::

    with replacing(reports / "cost" / name) as tmp:   # a folder: fill it
        tmp.mkdir()
        (tmp / "report.md").write_text(text)

    write_text(run_dir / "result.json", json.dumps(summary))   # one file

(The model store keeps its own swap, which also puts an old model back after a crash:
``cluster/store/store.py``.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(final: Path) -> Iterator[Path]:
    """A fresh path beside ``final`` for the caller to create (a file or a folder); when the
    block ends without an error it takes ``final``'s place, and an old folder is removed only
    after the rename. On an error it is removed and ``final`` is left as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():  # a rename cannot replace a non-empty folder
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    finally:
        _remove(tmp)


def write_text(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with replacing(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
