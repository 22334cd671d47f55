"""What the plugin adds to every pytest run: a trivial suite timed (CPU time) with and without
`-p no:neuronperf`, interleaved in one run, plus pytest-benchmark's cost for reference and a check that
torch, numpy and matplotlib stay unloaded.

    python benchmarks/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = "def test_one():\n    assert 1 + 1 == 2\n"


def time_pytest(cwd: Path, *args: str) -> float:
    """CPU seconds (user + system) of one pytest run: steadier than wall time on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "test_trivial.py").write_text(SUITE)
        base = ["-p", "no:benchmark"]
        samples: dict[str, list[float]] = {"without": [], "with": [], "pytest-benchmark": []}
        time_pytest(cwd, *base)  # warm the file cache
        for _ in range(args.runs):
            samples["without"].append(time_pytest(cwd, *base, "-p", "no:neuronperf"))
            samples["with"].append(time_pytest(cwd, *base))
            samples["pytest-benchmark"].append(time_pytest(cwd, "-p", "no:neuronperf"))
        # Noise only ever adds time, so the fastest of many runs is the steadiest estimate of the cost;
        # the median is printed beside it.
        best = {k: min(v) for k, v in samples.items()}
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"pytest on a trivial suite, CPU time of {args.runs} interleaved runs each (fastest; median)")
        print(f"plugin start-up cost: {(best['with'] - best['without']) * 1000:.1f} ms added "
              f"({(med['with'] - med['without']) * 1000:.1f} ms by medians; "
              f"{best['with'] / best['without']:.3f} x without) (target <= 10 ms)")
        print(f"pytest-benchmark start-up cost: {(best['pytest-benchmark'] - best['without']) * 1000:.1f} ms added "
              f"({(med['pytest-benchmark'] - med['without']) * 1000:.1f} ms by medians) (reference)")
    probe = subprocess.run([sys.executable, "-c", "import sys, pytest_neuronperf.plugin; "
                            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    print(f"heavy modules imported by the plugin: {probe.stdout.strip()} (target [])")


if __name__ == "__main__":
    main()
