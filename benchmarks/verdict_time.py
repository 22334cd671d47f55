"""How long a verdict takes: the wall time of a gated, single-configuration pytest run of a
transformers model against the target duration + one model load + 2 s.

    python benchmarks/verdict_time.py [--duration 5] [--repeats 2] [--previous REF | --no-previous]

Method, and why:
- The model is DistilBERT with 2 layers built from a config (random weights, nothing downloaded),
  in a module of its own beside the test, as users write them. Its copies import transformers,
  which is what made every round pay seconds of imports before copies forked from a server that
  preloads the model's modules.
- Arms, each in a fresh folder: this tree as it is; this tree with ``--npf-preload=off`` (every copy
  imports the model's modules itself); and an earlier commit, ``--previous`` (default HEAD; ``git worktree add``,
  removed at the end),
  which shows the whole change, not only the preloading. Each arm saves a baseline first, then the
  arms' gated runs alternate, ``--repeats`` each; the figure is the median wall time of an arm's
  gated runs, measured around the whole ``python -m pytest`` process, start-up and collection
  included, whatever the verdict (on a busy machine a run may fail the gate; it still decided).
- The verdict should be clear, as the target asks: unchanged code judged with 20% on throughput and
  p50 and 60% on p99 (a round of 1.7 s holds a few hundred inferences of this model, too few for a
  p99 that says more), so that the first look (3 rounds) decides unless the machine's load moves.
- The test extra's other pytest plugins (hypothesis, pytest-benchmark, anyio) are left out of the runs:
  their start-up is not the plugin's.
- pytest's cache is on, as in a user's project (the gated run's forkserver starts before collection).
- "One model load": a fresh interpreter importing the model's module and building the model,
  median of three, measured in this run on this machine.
- Ratios against the target and against the other arms, not absolute times, are the result: the
  machine's speed and load cancel out of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = '''
import torch
from transformers import DistilBertConfig, DistilBertModel


class TinyDistilBert(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        config = DistilBertConfig(n_layers=2, dim=128, hidden_dim=256, n_heads=2, vocab_size=2000)
        self.bert = DistilBertModel(config).eval()

    def forward(self, input_ids):
        return self.bert(input_ids=input_ids).last_hidden_state
'''
TEST = '''
import pytest
import torch
from bert_model import TinyDistilBert


@pytest.mark.neuron_benchmark(model=TinyDistilBert, inputs=torch.ones(1, 32, dtype=torch.long), n_models=[1],
                              workers_per_model=[1])
def test_distilbert():
    pass
'''
LOAD = ("import time; t = time.perf_counter(); import bert_model; bert_model.TinyDistilBert(); "
        "print(time.perf_counter() - t)")
REPO = Path(__file__).resolve().parent.parent
SLACK_S = 2.0


def folder(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    (path / "bert_model.py").write_text(MODEL)
    (path / "test_distilbert.py").write_text(TEST)
    return path


def env_for(package_root: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if package_root is not None:
        # The previous commit's package comes first on sys.path, ahead of the editable install.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_root), env.get("PYTHONPATH")) if p)
    return env


def model_load_s(where: Path) -> float:
    times = [float(subprocess.run([sys.executable, "-c", LOAD], cwd=where, capture_output=True, text=True,
                                  check=True).stdout) for _ in range(3)]
    return statistics.median(times)


def pytest_run(where: Path, env: dict[str, str], duration: float, *args: str,
               tolerance: str = "throughput=20%,p50=20%,p99=60%") -> tuple[float, dict[str, Any]]:
    """The wall time of one pytest process and its results file."""
    results = where / "results.json"
    # pytest's cache stays on, as in a user's project: it remembers which forkservers to start early.
    # Plugins of this virtualenv (the test extra's) that are not what is measured: hypothesis alone
    # adds about a second to every pytest start.
    others = ["-p", "no:randomly", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:anyio"]
    command = [sys.executable, "-m", "pytest", "-q", *others, f"--npf-duration={duration:g}",
               f"--npf-tolerance={tolerance}", f"--npf-json={results}", *args, "test_distilbert.py"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    # 1: the gate failed the test; on a busy machine that happens, and the verdict still came.
    if done.returncode not in (0, 1) or not results.exists():
        sys.exit(f"verdict_time.py: {' '.join(command)} failed in {where}:\n{done.stdout}\n{done.stderr}")
    return wall, json.loads(results.read_text())


def _reports(results: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "load_avg_ms" in node and "throughput_avg" in node:
                found.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(results)
    return found


class Arm:
    """One way of running the same test: its own folder, package and arguments, and its measurements."""

    def __init__(self, base: Path, name: str, package_root: Path | None, *args: str) -> None:
        self.name, self.args = name, args
        self.where = folder(base, name.replace(" ", "-").replace(",", "").replace("=", "-"))
        self.env = env_for(package_root)
        check = subprocess.run([sys.executable, "-c", "import pytest_neuronperf; print(pytest_neuronperf.__file__)"],
                               cwd=self.where, env=self.env, capture_output=True, text=True, check=True)
        expected = package_root or REPO
        if not Path(check.stdout.strip()).resolve().is_relative_to(expected.resolve()):
            sys.exit(f"verdict_time.py: arm {name!r} imports the package from {check.stdout.strip()}, "
                     f"not from {expected}")
        self.walls: list[float] = []
        self.loads: list[float] = []
        self.rounds: list[int] = []
        self.verdicts: list[str] = []

    def save_baseline(self, duration: float) -> None:
        pytest_run(self.where, self.env, duration, "--npf-save-baseline", *self.args)

    def gated(self, duration: float) -> None:
        wall, results = pytest_run(self.where, self.env, duration, *self.args)
        self.walls.append(wall)
        for report in _reports(results):
            self.loads.append(float(report["load_avg_ms"]))
            self.rounds.append(len(report.get("rounds") or []))
        text = json.dumps(results)
        self.verdicts.append(next((v for v in ("fail", "inconclusive", "pass") if f'"verdict": "{v}"' in text), "?"))

    def overhead_s(self, duration: float, first_rounds: int = 3) -> float:
        """Median wall time beyond the timed windows (each round's window is duration / first_rounds)."""
        return statistics.median(w - r * duration / first_rounds for w, r in zip(self.walls, self.rounds, strict=True))

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def load_ms(self) -> float:
        return statistics.median(self.loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--previous", default="HEAD", metavar="REF", help="the earlier commit's arm (default HEAD)")
    parser.add_argument("--no-previous", action="store_true", help="leave out the earlier commit's arm")
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="npf-verdict-time-"))
    previous = base / "previous-commit"
    try:
        load = model_load_s(folder(base, "load"))
        target = options.duration + load + SLACK_S
        arms = [Arm(base, "this tree", None), Arm(base, "this tree, --npf-preload=off", None, "--npf-preload=off")]
        if not options.no_previous:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(previous), options.previous],
                           check=True, capture_output=True)
            arms.append(Arm(base, f"commit {options.previous}", previous))
        for a in arms:
            a.save_baseline(options.duration)
        # The arms' gated runs alternate, so that a change in the machine's load hits each alike.
        for _ in range(options.repeats):
            for a in arms:
                a.gated(options.duration)
    finally:
        if previous.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(previous)],
                           capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    print(f"duration {options.duration:g} s, one model load {load:.2f} s (fresh interpreter: import + build), "
          f"target = duration + load + {SLACK_S:g} s = {target:.2f} s; {os.cpu_count()} CPUs")
    print(f"{'arm':32} {'wall s':>7} {'wall/target':>11} {'wall/duration':>13} {'load_avg_ms':>11} "
          f"{'beyond windows s':>16}  rounds  verdicts")
    for a in arms:
        walls = ", ".join(f"{w:.1f}" for w in a.walls)
        print(f"{a.name:32} {a.wall:7.1f} {a.wall / target:11.2f} {a.wall / options.duration:13.2f} "
              f"{a.load_ms:11.0f} {a.overhead_s(options.duration):16.1f}  {a.rounds}  {a.verdicts}  (walls {walls})")
    first = arms[0]
    for other in arms[1:]:
        print(f"{other.name} / {first.name}: wall {other.wall / first.wall:.2f}x, "
              f"load_avg_ms {other.load_ms / max(first.load_ms, 1e-9):.0f}x")
    print("target met" if first.wall <= target else f"target missed by {first.wall - target:.1f} s")


if __name__ == "__main__":
    main()
