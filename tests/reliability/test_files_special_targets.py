"""Result and baseline files never replace device nodes, FIFOs or symbolic links (issue 12, item 1).

Writing a file atomically means renaming a temporary file over it; done to ``/dev/null`` or
``/dev/stdout`` that replaces the device node (as root, ``npf_json = /dev/full`` once replaced the
machine's ``/dev/full``), and done to a symlink it replaces the link. These tests never point the
plugin at a real system file except ``/dev/null`` as a non-root user (where a regression cannot
replace it): as root they use a device node of their own, made with mknod in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.baselines.schema import parse_baseline
from tests.reliability import harness

ONE_TEST = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_it():
    pass
"""
ENTRY = "test_it::default::b1-n1-w1-p1"


def _results(text: str) -> dict[str, Any]:
    doc = json.loads(text)
    assert isinstance(doc, dict) and doc["measurements"], text[:500]
    return doc


def _null_device(tmp_path: Path) -> tuple[Path, int]:
    """A character device to write to, and its device number: /dev/null unless a regression could replace it."""
    if os.geteuid() != 0:
        return Path("/dev/null"), os.stat("/dev/null").st_rdev
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the same device as /dev/null
        with open(node, "wb") as fh:
            fh.write(b"")
    except OSError as exc:  # no CAP_MKNOD, or a nodev mount
        pytest.skip(f"cannot make a private device node here ({exc}); /dev/null itself is not risked as root")
    return node, os.stat(node).st_rdev


def test_json_into_a_character_device_writes_into_it_and_keeps_the_device(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_dev=ONE_TEST)
    device, rdev = _null_device(tmp_path)
    done = harness.run(pytester, f"--npf-json={device}")
    assert done.result.ret == 0, done.output
    assert "could not write" not in done.output, done.output
    info = os.lstat(device)
    assert stat.S_ISCHR(info.st_mode), f"{device} was replaced by a {stat.filemode(info.st_mode)} file"
    assert info.st_rdev == rdev
    assert not [p.name for p in device.parent.iterdir() if p.name.startswith(f".{device.name}.")]
    assert not done.leftovers, done.describe_leftovers()


def _read_fifo(path: Path, out: list[bytes], stop: threading.Event) -> None:
    """Read one writer's bytes from a FIFO; held open from the start, so a writer never waits for a reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        got = False
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:  # a writer is connected and has not written yet
                time.sleep(0.01)
                continue
            if data:
                out.append(data)
                got = True
            elif got or stop.is_set():
                return  # the writer closed it, or the test is over
            else:
                time.sleep(0.01)  # no writer yet
    finally:
        os.close(fd)


def test_json_into_a_fifo_streams_into_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_fifo=ONE_TEST)
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    chunks: list[bytes] = []
    stop = threading.Event()
    reader = threading.Thread(target=_read_fifo, args=(fifo, chunks, stop), daemon=True)
    reader.start()
    try:
        done = harness.run(pytester, f"--npf-json={fifo}")
    finally:
        stop.set()
        reader.join(10)
    assert done.result.ret == 0, done.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    _results(b"".join(chunks).decode())


def test_json_into_a_fifo_nobody_reads_fails_with_a_message_instead_of_hanging(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_fifo=ONE_TEST)
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    done = harness.run(pytester, f"--npf-json={fifo}", timeout=60)
    assert done.result.ret != 0
    assert f"--npf-json: could not write {fifo}" in done.output
    assert "no process is reading this FIFO" in done.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("existing", [True, False], ids=["target-exists", "dangling"])
def test_json_through_a_symlink_writes_its_target_and_keeps_the_link(
        pytester: pytest.Pytester, existing: bool) -> None:
    pytester.makepyfile(test_link=ONE_TEST)
    (pytester.path / "shared").mkdir()
    target = pytester.path / "shared" / "results.json"
    if existing:
        target.write_text("old\n")
        target.chmod(0o640)
    link = pytester.path / "results.json"
    link.symlink_to(Path("shared") / "results.json")
    done = harness.run(pytester, "--npf-json=results.json")
    assert done.result.ret == 0, done.output
    assert link.is_symlink(), "the link was replaced by a regular file"
    assert os.readlink(link) == os.path.join("shared", "results.json")
    _results(target.read_text())
    if existing:
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_json_through_a_link_to_an_open_descriptor_lands_in_the_stream(pytester: pytest.Pytester) -> None:
    # What /dev/stdout is: a link to /proc/self/fd/1. A private link to the same place shows the
    # behaviour without risking /dev/stdout itself.
    pytester.makepyfile(test_stdout=ONE_TEST)
    link = pytester.path / "to-stdout"
    link.symlink_to("/proc/self/fd/1")
    done = harness.run(pytester, f"--npf-json={link}")
    assert done.result.ret == 0, done.output
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    text = "\n".join(done.result.outlines)
    start = text.index('{\n  "')
    decoder = json.JSONDecoder()
    doc, _ = decoder.raw_decode(text[start:])
    assert doc["measurements"]
    assert "1 passed" in text  # the rest of the output is still there


def test_json_at_a_directory_is_refused_with_a_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dir=ONE_TEST)
    (pytester.path / "out").mkdir()
    (pytester.path / "out" / "keep.txt").write_text("keep")
    done = harness.run(pytester, "--npf-json=out")
    assert done.result.ret != 0
    assert "--npf-json: could not write out: " in done.output
    assert "it is a directory; name a file inside it instead" in done.output
    assert (pytester.path / "out" / "keep.txt").read_text() == "keep"


# --- baselines --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_baseline_link_inside_the_folder_is_written_through(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_linked=ONE_TEST)
    folder = pytester.path / ".neuronperf" / "baselines"
    (folder / "store").mkdir(parents=True)
    link = folder / "test_linked.json"
    link.symlink_to(Path("store") / "test_linked.json")
    done = harness.run(pytester, "--npf-save-baseline")
    assert done.result.ret == 0, done.output
    assert link.is_symlink(), "the baseline link was replaced by a regular file"
    target = folder / "store" / "test_linked.json"
    assert list(parse_baseline(target.read_bytes(), target).entries) == [ENTRY]
    # The next run reads it back through the link and compares with it.
    again = harness.run(pytester, "--npf-require-baseline", "--npf-json=out.json")
    assert "no baseline" not in again.output, again.output
    (m,) = _results((pytester.path / "out.json").read_text())["measurements"]
    assert m["outcomes"][0]["baseline"] is not None
    assert link.is_symlink()


def test_a_baseline_link_leading_out_of_the_folder_is_refused(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_escape=ONE_TEST)
    folder = pytester.path / ".neuronperf" / "baselines"
    folder.mkdir(parents=True)
    outside = tmp_path / "precious.json"
    outside.write_text("not yours\n")
    link = folder / "test_escape.json"
    link.symlink_to(outside)
    done = harness.run(pytester, "--npf-save-baseline", "--npf-no-compare")
    assert done.result.ret != 0
    assert f"baseline not saved for test_escape.py: baseline file {link} is unusable: it leads (through a " \
           f"symbolic link) to {outside}, outside the baseline folder" in done.output
    assert outside.read_text() == "not yours\n"
    assert link.is_symlink() and os.readlink(link) == str(outside)
