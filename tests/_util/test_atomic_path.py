"""atomic_path (and write_atomic on top of it): the old file or the new one, never a mix, no temp left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pytest_neuronperf._util.atomic_write import atomic_path, remove_stale_temp_files, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_success_replaces_the_file_and_keeps_its_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        assert tmp.exists() and target.read_bytes() == b"old"  # the old file stays until the block ends
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o640
    assert os.listdir(tmp_path) == ["model.pt"]


def test_a_new_file_is_created_readable(tmp_path: Path) -> None:
    with atomic_path(str(tmp_path / "new.bin")) as tmp, open(tmp, "wb") as fh:
        fh.write(b"data")
    assert (tmp_path / "new.bin").read_bytes() == b"data"
    assert _mode(tmp_path / "new.bin") == 0o644


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_failure_leaves_the_old_file_untouched_and_no_temp_file(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise error
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_failure_without_an_old_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "model.pt"):
        raise RuntimeError("compiler crashed")
    assert os.listdir(tmp_path) == []


def test_a_writer_that_removes_its_temp_file_fails_and_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError), atomic_path(target) as tmp:
        tmp.unlink()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.pt"]


def test_write_atomic_uses_the_same_temp_names_that_stale_cleanup_knows(tmp_path: Path) -> None:
    target = tmp_path / "baseline.json"
    write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}" and _mode(target) == 0o644
    with atomic_path(target) as tmp:
        left_behind = tmp_path / tmp.name  # as a killed writer would leave it
        os.link(tmp, tmp_path / "copy")  # keep a temp name around after the block
    os.rename(tmp_path / "copy", left_behind)
    remove_stale_temp_files(target)
    assert os.listdir(tmp_path) == ["baseline.json"]
