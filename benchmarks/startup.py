"""What the plugin adds to every pytest run: a trivial suite run with and without
``-p no:neuronperf``, interleaved in one run, with pytest-benchmark's cost measured beside it, plus a
check that torch, numpy and matplotlib stay unloaded.

    python benchmarks/startup.py [--runs 60]

Method, and why:
- Plugins load from their entry points, as in a user's environment; every other installed pytest
  plugin is blocked with ``-p no:NAME`` in all arms (hypothesis alone adds ~0.7 s to each start-up
  here, far more noise than the 10 ms being measured).
- This process imports pytest once and forks a child per run, which calls ``pytest.main`` and is
  charged its own CPU time (``os.wait4``). Starting the interpreter and importing pytest cost every
  arm the same ~150 ms, and on a shared machine their jitter alone is several times the figure
  measured; forking leaves them out and keeps everything the plugin does: finding its entry point,
  importing it, its hooks.
- Two conditions. With bytecode caches, the usual case (pytest keeps an assertion-rewritten copy of
  each module of an installed plugin's package in ``__pycache__``). And without: the measured
  packages' bytecode deleted and ``sys.dont_write_bytecode`` set, as under
  ``PYTHONDONTWRITEBYTECODE=1`` in many container images (where pytest's rewriting ignores what pip
  compiled) or in an editable checkout: every module of the plugin's package that a run loads is
  parsed and compiled on every run. The deleted bytecode is compiled again at the end.
- CPU time is steadier than wall time. Arms run in a rotating order; each figure is the median of
  the per-round differences, with their interquartile range, so drift in the machine's load cancels.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SUITE = "def test_one():\n    assert 1 + 1 == 2\n"
# arm label -> (pytest11 entry-point name, top-level package)
MEASURED = {
    "pytest-neuronperf": ("neuronperf", "pytest_neuronperf"),
    "pytest-benchmark": ("benchmark", "pytest_benchmark"),
}


def arms() -> dict[str, list[str]]:
    """Each arm's arguments: every pytest11 entry point blocked but the arm's own."""
    names = sorted({ep.name for ep in importlib.metadata.entry_points(group="pytest11")})
    missing = [name for name, _ in MEASURED.values() if name not in names]
    if missing:
        sys.exit(f"startup.py: plugins not installed: {', '.join(missing)} (pip install -e '.[test]')")

    def blocking(keep: str | None) -> list[str]:
        return [arg for name in names if name != keep for arg in ("-p", f"no:{name}")]

    return {"pytest alone": blocking(None), **{label: blocking(name) for label, (name, _) in MEASURED.items()}}


def run_pytest(args: list[str], write_bytecode: bool) -> float:
    """CPU milliseconds of one ``pytest.main`` in a forked child."""
    pid = os.fork()
    if pid == 0:  # the child: quiet, then pytest, then out without running this process's atexit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        sys.dont_write_bytecode = not write_bytecode
        os._exit(int(pytest.main(["-q", "-p", "no:cacheprovider", *args])))
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"startup.py: pytest {' '.join(args)} failed ({os.waitstatus_to_exitcode(status)})")
    return (usage.ru_utime + usage.ru_stime) * 1000


def package_folders() -> list[Path]:
    folders: list[Path] = []
    for _, package in MEASURED.values():
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            folders.extend(Path(folder) for folder in spec.submodule_search_locations)
    return folders


def drop_bytecode(folders: list[Path]) -> int:
    """Delete the measured packages' bytecode: pip's compiled modules and pytest's rewritten ones."""
    cached = [path for folder in folders for path in folder.rglob("__pycache__/*.pyc")]
    for path in cached:
        path.unlink()
    return len(cached)


def measure(arm_args: dict[str, list[str]], runs: int, write_bytecode: bool, title: str) -> None:
    names = list(arm_args)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm the file cache, and write bytecode caches where allowed
        run_pytest(arm_args[name], write_bytecode)
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            cpu[name].append(run_pytest(arm_args[name], write_bytecode))
    base = names[0]
    print(f"{title}: pytest.main alone {statistics.median(cpu[base]):.0f} ms CPU")
    for name, target in (("pytest-neuronperf", " (target <= 10 ms)"), ("pytest-benchmark", " (reference)")):
        diffs = [a - b for a, b in zip(cpu[name], cpu[base], strict=True)]
        q1, q2, q3 = statistics.quantiles(diffs, n=4)
        print(f"  {name} adds {q2:.1f} ms CPU (interquartile {q1:.1f} to {q3:.1f}){target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=60, help="rounds per condition; each runs every arm once")
    args = ap.parse_args()
    if "pytest_neuronperf" in sys.modules:
        sys.exit("startup.py: the plugin must not be imported before the children start")
    arm_args = arms()
    print(f"pytest -q on a one-test suite, {args.runs} rounds of interleaved runs per condition; "
          "medians of per-round differences")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "test_trivial.py").write_text(SUITE)
        os.chdir(tmp)
        measure(arm_args, args.runs, True, "with bytecode caches")
        folders = package_folders()
        dropped = drop_bytecode(folders)
        try:
            measure(arm_args, args.runs, False, f"without bytecode ({dropped} compiled modules deleted)")
        finally:
            for folder in folders:  # put back what an install compiled
                compileall.compile_dir(str(folder), quiet=1)
    probe = subprocess.run([sys.executable, "-c", "import sys, pytest_neuronperf.plugin; "
                            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    print(f"heavy modules imported by the plugin: {probe.stdout.strip()} (target [])")


if __name__ == "__main__":
    main()
