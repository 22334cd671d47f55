"""A long TMPDIR does not stop benchmarks: the forkserver's socket goes where its path fits.

multiprocessing puts the forkserver's Unix socket in its temporary folder under TMPDIR, and a
socket path must fit in 108 bytes; per-job temporary folders in CI are often longer than that.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import harness

ONE = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_fine():
    pass
"""
LENGTH = 150


@pytest.fixture
def long_tmpdir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="npfrel-long-"))
    path = base / ("d" * (LENGTH - len(str(base)) - 1))
    path.mkdir()
    assert len(str(path)) == LENGTH
    try:
        yield path
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _private_socket_dirs() -> set[Path]:
    return set(Path("/tmp").glob("npf-mp-*"))


def test_a_benchmark_runs_under_a_temporary_folder_too_long_for_a_socket_path(
    pytester: pytest.Pytester, long_tmpdir: Path
) -> None:
    pytester.makepyfile(test_one=ONE)
    before = _private_socket_dirs()
    done = harness.run(pytester, env={"TMPDIR": str(long_tmpdir)})
    assert "AF_UNIX path too long" not in done.output
    done.result.assert_outcomes(passed=1)
    assert not done.leftovers, done.describe_leftovers()
    # The short folder that held the socket is removed when pytest exits, like multiprocessing's own.
    assert not _private_socket_dirs() - before
    assert not list(long_tmpdir.glob("pymp-*")), "multiprocessing's folder was left in TMPDIR"
