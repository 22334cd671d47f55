"""Soak: one pytest session running many short benchmark configurations; open file descriptors, child
processes and RSS of the pytest process must stay flat from the middle of the run to its end.

    python benchmarks/soak.py [--tests 50] [--duration 0.05]

Each test runs 4 configurations (copies x workers), so the default is 200 configurations, each with
fresh model copies. A conftest in the temporary suite samples /proc/self at session start, after the
first test (model copies' forkserver up, everything imported), after the middle test and after the
last one. Prints ``name: value (target)`` lines; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFTEST = '''
import json
import os

_SAMPLES = {}
_DONE = [0]
_AT = {1: "first", %(middle)d: "middle", %(last)d: "end"}


def _children(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def _descendants(pid):
    seen, stack = [], _children(pid)
    while stack:
        child = stack.pop()
        try:
            with open(f"/proc/{child}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        seen.append(child)
        stack += _children(child)
    return seen


def _sample(name):
    with open("/proc/self/status") as fh:
        rss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    _SAMPLES[name] = {"fds": len(os.listdir("/proc/self/fd")), "children": len(_descendants(os.getpid())),
                      "rss_mb": rss_kb / 1024}


def pytest_sessionstart(session):
    _sample("start")


def pytest_runtest_logfinish(nodeid, location):
    _DONE[0] += 1
    if _DONE[0] in _AT:
        _sample(_AT[_DONE[0]])


def pytest_unconfigure(config):
    with open(os.environ["NPF_SOAK_OUT"], "w") as fh:
        json.dump(_SAMPLES, fh)
'''

TEST = '''
import pytest
import torch

from benchmarks.bench_models import Identity


@pytest.mark.parametrize("i", range(%(tests)d))
@pytest.mark.neuron_benchmark(model=Identity, inputs=torch.zeros(1, 16), duration=%(duration)r, rounds=1,
                              warmup=1, n_models=%(copies)r, workers_per_model=%(workers)r)
def test_soak(i):
    pass
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tests", type=int, default=50)
    ap.add_argument("--duration", type=float, default=0.05)
    args = ap.parse_args()
    # Four configurations per test: copies x workers where two copies fit, else four worker counts.
    copies, workers = ([1, 2], [1, 2]) if len(os.sched_getaffinity(0)) >= 2 else ([1], [1, 2, 3, 4])
    with tempfile.TemporaryDirectory(prefix="npf-soak-") as tmp:
        suite = Path(tmp)
        (suite / "conftest.py").write_text(CONFTEST % {"middle": args.tests // 2, "last": args.tests})
        (suite / "test_soak.py").write_text(TEST % {"tests": args.tests, "duration": args.duration,
                                                    "copies": copies, "workers": workers})
        out = suite / "samples.json"
        env = dict(os.environ, NPF_SOAK_OUT=str(out),
                   PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
             "--npf-no-compare", "--npf-save-baseline", "-W", "ignore::UserWarning"],
            cwd=suite, env=env, capture_output=True, text=True,
        )
        seconds = time.monotonic() - t0
        if proc.returncode != 0 or not out.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            print(f"pytest exit status: {proc.returncode} (target 0)")
            return 1
        s = json.loads(out.read_text())
    configs = args.tests * len(copies) * len(workers)
    rss_growth = s["end"]["rss_mb"] - s["middle"]["rss_mb"]
    checks = [
        ("configurations", configs, ">= 200 by default", True),
        ("session seconds", round(seconds, 1), "information", True),
        ("open fds start/first/middle/end",
         "/".join(str(s[k]["fds"]) for k in ("start", "first", "middle", "end")), "middle == end",
         s["middle"]["fds"] == s["end"]["fds"]),
        ("child processes start/first/middle/end",
         "/".join(str(s[k]["children"]) for k in ("start", "first", "middle", "end")),
         "first == middle == end (forkserver and resource tracker only)",
         s["first"]["children"] == s["middle"]["children"] == s["end"]["children"] <= 2),
        ("rss MB start/first/middle/end",
         "/".join(f"{s[k]['rss_mb']:.1f}" for k in ("start", "first", "middle", "end")), "information", True),
        ("rss growth middle->end MB", round(rss_growth, 1), "< 10 MB", rss_growth < 10),
    ]
    for name, value, target, _ in checks:
        print(f"{name}: {value} ({target})")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
