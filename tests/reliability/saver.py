"""A process that saves baselines through BaselineStore, for tests that kill it or race it.

    python -m tests.reliability.saver rewrite DIR ENTRIES
        Saves versions n+1, n+2, ... of a module's baselines forever (n: the version in
        the file), every entry of version k carrying ``report.version == k``; prints
        each version once saved.
    python -m tests.reliability.saver add DIR PREFIX COUNT
        Adds COUNT entries named PREFIX-0 .. PREFIX-<COUNT-1>, one save each.
"""

from __future__ import annotations

import sys

from pytest_neuronperf.baselines.schema import BaselineRecord
from pytest_neuronperf.baselines.store import BaselineStore
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS

MODULE = "tests/test_soak_target.py"
FINGERPRINT = {"device_type": "cpu", "instance_type": "test", "cpu_model": "test", "cpu_count": "2",
               "torch": "0", "torch_neuronx": "not installed", "python": "3"}
ROUND = {"throughput": 1234.5, "p50_ms": 0.81, "p99_ms": 1.93, "samples": 5000,
         "bins": [float(i) for i in range(40)]}


def record(version: int, rounds: int = 10) -> BaselineRecord:
    return BaselineRecord(fingerprint=FINGERPRINT, config={"batch_size": 1, "n_models": 1},
                          rounds=[dict(ROUND, round=i) for i in range(rounds)],
                          report={"version": version, "throughput_avg": 1234.5})


def entry(i: int) -> str:
    return f"test_many[{i}]::default::b1-n1-w1-p1"


def rewrite(root: str, entries: int) -> None:
    store = BaselineStore(root)
    # Continue from the file's version, so that versions only grow across killed runs.
    versions = [records[0].report.get("version") for records in store.load(MODULE).entries.values()]
    version = max((v for v in versions if isinstance(v, int)), default=0)
    while True:
        version += 1
        store.save(MODULE, {entry(i): record(version) for i in range(entries)}, DEFAULT_FINGERPRINT_KEYS)
        print(version, flush=True)


def add(root: str, prefix: str, count: int) -> None:
    store = BaselineStore(root)
    for i in range(count):
        store.save(MODULE, {f"{prefix}-{i}::default::b1-n1-w1-p1": record(i, rounds=1)}, DEFAULT_FINGERPRINT_KEYS)


def main(argv: list[str]) -> None:
    if argv[0] == "rewrite":
        rewrite(argv[1], int(argv[2]))
    elif argv[0] == "add":
        add(argv[1], argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
