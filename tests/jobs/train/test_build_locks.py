"""A torch extension build lock left by a killed compile is cleared; a live one is not."""

import os
import time

from jobs.train.loop import STALE_BUILD_LOCK_S, clear_stale_build_locks


def test_only_locks_older_than_a_compile_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    stale = tmp_path / "py311_cpu" / "deepspeed_shm_comm" / "lock"
    live = tmp_path / "py311_cpu" / "other_op" / "lock"
    for lock in (stale, live):
        lock.parent.mkdir(parents=True)
        lock.touch()
    old = time.time() - STALE_BUILD_LOCK_S - 60
    os.utime(stale, (old, old))
    assert clear_stale_build_locks() == [stale]
    assert not stale.exists() and live.exists()
