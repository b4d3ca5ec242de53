"""The one atomic write every job output uses: the old version or the new one, never half, and
nothing left behind."""

import pytest

from cluster.atomic import replacing, write_text


def test_a_folder_is_replaced_whole_and_a_failed_write_keeps_the_old_one(tmp_path):
    final = tmp_path / "report"
    with replacing(final) as tmp:
        tmp.mkdir()
        (tmp / "a.md").write_text("one")
    assert (final / "a.md").read_text() == "one"
    with pytest.raises(RuntimeError), replacing(final) as tmp:
        tmp.mkdir()
        (tmp / "a.md").write_text("half")
        raise RuntimeError("the job failed")
    assert (final / "a.md").read_text() == "one"
    with replacing(final) as tmp:
        tmp.mkdir()
        (tmp / "b.md").write_text("two")
    assert sorted(p.name for p in final.iterdir()) == ["b.md"]  # the old files are gone
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temp or old folder left


def test_a_file_is_written_through_a_rename(tmp_path):
    path = tmp_path / "sub" / "result.json"
    write_text(path, "{}")
    write_text(path, b"[1]")
    assert path.read_text() == "[1]"
    with pytest.raises(OSError), replacing(path) as tmp:
        tmp.write_text("half")
        raise OSError("disk full")
    assert path.read_text() == "[1]" and [p.name for p in path.parent.iterdir()] == [path.name]
