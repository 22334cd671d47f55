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


# --- what is not a regular file (issue 12, item 1) -------------------------------------------------


def test_a_link_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "index.json"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "index.json"
    link.symlink_to(Path("real") / "index.json")
    chained = tmp_path / "chained.json"
    chained.symlink_to(link)
    write_atomic(chained, b"new")
    assert link.is_symlink() and chained.is_symlink()
    assert target.read_bytes() == b"new" and _mode(target) == 0o600
    assert sorted(os.listdir(tmp_path / "real")) == ["index.json"]
    with atomic_path(link) as tmp:
        assert tmp.parent == tmp_path / "real"  # beside the target, for an atomic rename
        tmp.write_bytes(b"newer")
    assert link.is_symlink() and target.read_bytes() == b"newer"


def test_a_dangling_link_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.json"
    link.symlink_to("made.json")
    write_atomic(link, b"{}")
    assert link.is_symlink() and (tmp_path / "made.json").read_bytes() == b"{}"


def test_a_loop_of_links_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError, match="too many levels of symbolic links"):
        write_atomic(tmp_path / "a", b"x")


def test_a_fifo_is_written_into_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="no process is reading this FIFO"):
        write_atomic(fifo, b"nobody listens")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, b"hello")
        assert os.read(reader, 100) == b"hello"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]


def test_a_character_device_is_written_into_in_place(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        device = tmp_path / "null"  # as root a regression would replace the real /dev/null
        try:
            os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
            device.write_bytes(b"")
        except OSError as exc:
            pytest.skip(f"cannot make a device node here: {exc}")
    else:
        device = Path("/dev/null")
    rdev = os.stat(device).st_rdev
    write_atomic(device, b"discarded")
    with atomic_path(device) as tmp:
        assert tmp == device  # written into as it is
        tmp.write_bytes(b"discarded too")
    assert stat.S_ISCHR(os.lstat(device).st_mode) and os.stat(device).st_rdev == rdev


def test_a_link_to_an_open_descriptor_writes_to_that_descriptor(tmp_path: Path) -> None:
    out = tmp_path / "captured.txt"
    with open(out, "wb") as fh:
        fh.write(b"before\n")
        fh.flush()
        link = tmp_path / "stream"
        link.symlink_to(f"/proc/self/fd/{fh.fileno()}")
        write_atomic(link, b"{}\n")
        fh.write(b"after\n")  # at the shared offset: nothing is overwritten
    assert out.read_bytes() == b"before\n{}\n" + b"after\n"
    assert link.is_symlink()


@pytest.mark.parametrize("kind", ["directory", "proc"])
def test_what_is_never_written_is_refused_with_a_message(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path, message = tmp_path / "out", "it is a directory; name a file inside it instead"
        path.mkdir()
    else:
        path, message = tmp_path / "setting", "it is in /proc"
        path.symlink_to("/proc/sys/kernel/hostname")
    with pytest.raises(OSError, match=message):
        write_atomic(path, b"x")
    with pytest.raises(OSError, match=message), atomic_path(path):
        pass


def test_stale_temp_files_are_looked_for_beside_a_links_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "baseline.json"
    link.symlink_to(Path("real") / "baseline.json")
    write_atomic(link, b"{}")
    with atomic_path(link) as tmp:
        os.link(tmp, tmp_path / "real" / "copy")
    os.rename(tmp_path / "real" / "copy", tmp)
    remove_stale_temp_files(link)
    assert os.listdir(tmp_path / "real") == ["baseline.json"]
