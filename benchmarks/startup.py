"""What the plugin adds to every pytest run: a trivial suite timed with and without `-p no:neuronperf`,
interleaved in one run, plus pytest-benchmark's cost for reference and a check that torch stays unloaded.

    python benchmarks/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = "def test_one():\n    assert 1 + 1 == 2\n"


def time_pytest(cwd: Path, *args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


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
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"pytest on a trivial suite, median of {args.runs} interleaved runs")
        print(f"plugin start-up cost: {(med['with'] - med['without']) * 1000:.1f} ms added "
              f"({med['with'] / med['without']:.3f} x without) (target <= 10 ms)")
        print(f"pytest-benchmark start-up cost: {(med['pytest-benchmark'] - med['without']) * 1000:.1f} ms added "
              "(reference)")
    probe = subprocess.run([sys.executable, "-c", "import sys, pytest_neuronperf.plugin; "
                            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    print(f"heavy modules imported by the plugin: {probe.stdout.strip()} (target [])")


if __name__ == "__main__":
    main()
