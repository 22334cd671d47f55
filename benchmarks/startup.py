"""What the plugin adds to every pytest run: a trivial suite timed with and without the plugin,
interleaved in one run, with pytest-benchmark's cost measured beside it, plus a check that torch, numpy
and matplotlib stay unloaded.

    python benchmarks/startup.py [--runs 40]

Method, and why:
- Each arm runs ``pytest -p no:cacheprovider`` on a one-test suite with plugin autoloading off
  (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) and the plugin under test named with ``-p``. Other plugins
  installed in the same environment (hypothesis alone costs ~0.7 s of start-up here) would otherwise
  add far more noise than the 10 ms being measured. A last pair of runs with autoloading on
  (``-p no:neuronperf`` or not) is printed too, for the issue's literal form of the question.
- Bytecode of the plugin's package is compiled first, as ``pip install`` does for a wheel. An editable
  checkout under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise recompile the plugin's source on every
  run, a cost no installed user pays (and one pytest-benchmark, installed from a wheel, is spared).
- CPU time (user + system of the child) is steadier than wall time on a shared machine. The three arms
  run in a rotating order; the figure is the median of the per-round differences (with its
  interquartile range), so drift in the machine's load cancels.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest_neuronperf

SUITE = "def test_one():\n    assert 1 + 1 == 2\n"
ARMS: dict[str, tuple[str, ...]] = {
    "pytest alone": (),
    "pytest-neuronperf": ("-p", "pytest_neuronperf.plugin"),
    "pytest-benchmark": ("-p", "pytest_benchmark.plugin"),
}


def run_pytest(cwd: Path, args: tuple[str, ...], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one pytest run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=40, help="rounds; each runs every arm once (default 40)")
    args = ap.parse_args()
    package_dir = Path(pytest_neuronperf.__file__).parent
    compileall.compile_dir(str(package_dir), quiet=1)
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    names = list(ARMS)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "test_trivial.py").write_text(SUITE)
        for name in names:  # warm the file cache
            run_pytest(cwd, ARMS[name], env)
        for i in range(args.runs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                c, w = run_pytest(cwd, ARMS[name], env)
                cpu[name].append(c)
                wall[name].append(w)
        base = "pytest alone"
        print(f"pytest on a one-test suite, plugin autoloading off, {args.runs} rounds of interleaved runs")
        print(f"{base}: CPU {statistics.median(cpu[base]) * 1000:.0f} ms, "
              f"wall {statistics.median(wall[base]) * 1000:.0f} ms (medians)")
        for name, target in (("pytest-neuronperf", " (target <= 10 ms)"), ("pytest-benchmark", " (reference)")):
            d_cpu = [a - b for a, b in zip(cpu[name], cpu[base])]
            d_wall = [a - b for a, b in zip(wall[name], wall[base])]
            q1, q2, q3 = quartiles(d_cpu)
            print(f"{name} adds {q2 * 1000:.1f} ms CPU (interquartile {q1 * 1000:.1f} to {q3 * 1000:.1f} ms), "
                  f"{statistics.median(d_wall) * 1000:.1f} ms wall, median of per-round differences{target}")

        autoload = {**os.environ}
        autoload.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        rounds = max(3, args.runs // 4)
        diffs = []
        for _ in range(rounds):
            without, _w = run_pytest(cwd, ("-p", "no:neuronperf"), autoload)
            with_, _w = run_pytest(cwd, (), autoload)
            diffs.append(with_ - without)
        print(f"with every installed plugin autoloaded: -p no:neuronperf or not differ by "
              f"{statistics.median(diffs) * 1000:.1f} ms CPU (median of {rounds}; the other plugins' noise dominates)")
    probe = subprocess.run([sys.executable, "-c", "import sys, pytest_neuronperf.plugin; "
                            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    print(f"heavy modules imported by the plugin: {probe.stdout.strip()} (target [])")


if __name__ == "__main__":
    main()
