#!/usr/bin/env bash
# End-to-end check of the CUDA backend on a machine with an NVIDIA GPU (about 3 minutes, at most 8).
#
#   bash benchmarks/gpu_check.sh            # uses python3 from PATH, which must have a CUDA build of torch
#   PYTHON=/opt/venv/bin/python bash benchmarks/gpu_check.sh
#
# It installs this checkout into a throw-away venv that sees the system's torch (nothing is downloaded),
# benchmarks a small MLP through pytest_neuronperf.benchmark(..., device_type="cuda"), then runs a
# marker test and a fixture test through pytest, printing the reports. It fails when a configuration
# did not finish, a copy's model or inputs were not on its GPU, or the calling process created a CUDA
# context. Then the per-stream timing: a model with a host-side gap between two GPU matmuls must run
# faster with workers_per_model=2 than with 1 (each worker on its own CUDA stream, waiting for that
# stream alone), every report must carry device_ms_* (CUDA events) no larger than its latency, and
# the harness is set against a bare loop of the same calls timed by CUDA events (its overhead per
# call). Last, the fingerprint's GPU fields. NPF_CHECK_DEVICE=cpu runs the same steps on the CPU (to
# check this script without a GPU; no device time there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
DEVICE="${NPF_CHECK_DEVICE:-cuda}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export NPF_CHECK_DEVICE="$DEVICE"

echo "== environment"
timeout 60 "$PY" - <<'EOF'
import os, sys
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPUs visible: {torch.cuda.device_count()}")
if os.environ["NPF_CHECK_DEVICE"] == "cuda" and torch.cuda.device_count() == 0:
    sys.exit("no CUDA GPU is visible to this torch: nothing to check")
EOF

echo "== install"
"$PY" -m venv --system-site-packages "$WORK/venv"
VPY="$WORK/venv/bin/python"
# $PY may itself be a venv, whose packages --system-site-packages does not reach: list them in a .pth.
"$PY" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
    > "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/npf-check-parent.pth"
PLUGIN=()
# Offline: no build isolation, no dependency resolution; pytest and numpy must already be there.
if timeout 120 "$VPY" -m pip install --no-deps --no-build-isolation -e "$ROOT" > "$WORK/pip.log" 2>&1; then
    echo "installed $ROOT (editable)"
else
    echo "pip install -e failed ($(grep -m1 -i 'error' "$WORK/pip.log" || tail -n1 "$WORK/pip.log")); using PYTHONPATH"
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
# Name the plugin only where no installed copy registers it already (naming it twice is an error).
if ! "$VPY" -c 'import sys
from importlib.metadata import entry_points
sys.exit(not any(e.name == "neuronperf" for e in entry_points(group="pytest11")))'; then
    PLUGIN=(-p pytest_neuronperf.plugin)
fi
export PYTHONPATH="$WORK${PYTHONPATH:+:$PYTHONPATH}"

cat > "$WORK/npf_gpu_models.py" <<'EOF'
"""Models for the check; CheckMLP refuses to run anywhere but on the device under test."""
import os
import time

import torch


class CheckMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 1024))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = os.environ.get("NPF_CHECK_DEVICE", "cuda")
        weight = self.net[0].weight
        if x.device.type != want or weight.device != x.device:
            raise RuntimeError(f"input on {x.device}, weights on {weight.device}; expected both on one {want}")
        return self.net(x)


class HostGaps(torch.nn.Module):
    """Two matmuls with a host-side gap between them (the host work of a real model: a tokenizer, a
    Python branch): while one worker sleeps, another can use the device."""

    GAP_S = 0.002

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        n = 2048 if os.environ.get("NPF_CHECK_DEVICE", "cuda") == "cuda" else 64
        self.a = torch.nn.Parameter(torch.randn(n, n) / n**0.5)
        self.b = torch.nn.Parameter(torch.randn(n, n) / n**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.a
        time.sleep(self.GAP_S)
        return y @ self.b
EOF

# Model copies re-import the main module by its path, so the API check is a file, not stdin.
cat > "$WORK/api_check.py" <<'EOF'
import os
import sys

import torch

import pytest_neuronperf as npf
from npf_gpu_models import CheckMLP


def main() -> None:
    device = os.environ["NPF_CHECK_DEVICE"]
    inputs = [torch.rand(1, 1024), torch.rand(32, 1024)]
    reports = npf.benchmark(CheckMLP, inputs, batch_sizes=[1, 32], duration=5, workers_per_model=[1, 2],
                            device_type=device, verbosity=1)
    npf.print_reports(reports)
    problems = [f"batch_size={r.get('batch_size')} n_models={r.get('n_models')} "
                f"workers_per_model={r.get('workers_per_model')}: {r.get('status')} {r.get('reason') or ''}"
                for r in reports if r.get("status") != "finished"]
    problems += [f"device_type {r.get('device_type')!r}" for r in reports if r.get("device_type") != device]
    if device == "cuda" and torch.cuda.is_initialized():
        problems.append("the calling process initialised CUDA (counting GPUs must not)")
    best = {}
    for r in reports:
        if r.get("status") == "finished":
            best[r["batch_size"]] = max(best.get(r["batch_size"], 0.0), r["throughput_avg"])
    if len(best) == 2:
        print(f"best throughput, batch 32 / batch 1: {best[32] / best[1]:.1f}x")
    if problems:
        sys.exit("FAILED:\n  " + "\n  ".join(problems))
    print(f"OK: {len(reports)} configurations finished on {device}")


if __name__ == "__main__":
    main()
EOF

echo "== pytest_neuronperf.benchmark(device_type=$DEVICE)"
(cd "$WORK" && timeout 150 "$VPY" api_check.py)

echo "== pytest marker and fixture"
cat > "$WORK/test_gpu_check.py" <<'EOF'
import os

import pytest
import torch

from npf_gpu_models import CheckMLP

DEVICE = os.environ["NPF_CHECK_DEVICE"]


@pytest.mark.neuron_benchmark(model=CheckMLP, inputs=torch.rand(8, 1024), batch_sizes=8, device_type=DEVICE,
                              duration=3, n_models=1, workers_per_model=1)
def test_marker():
    pass


def test_fixture(npf_bench):
    result = npf_bench(CheckMLP, torch.rand(8, 1024), device_type=DEVICE, duration=3, n_models=1,
                       workers_per_model=[1, 2])
    for r in result.reports:
        print(f"\n  {r['device_type']} w={r['workers_per_model']}: {r['throughput_avg']:.0f} inf/s, "
              f"p50 {r['latency_ms_p50']:.3f} ms, p99 {r['latency_ms_p99']:.3f} ms ({r['status']})")
    assert [r["status"] for r in result.reports] == ["finished", "finished"]
    assert {r["device_type"] for r in result.reports} == {DEVICE}
EOF
(cd "$WORK" && timeout 150 "$VPY" -m pytest -q -s -p no:cacheprovider "${PLUGIN[@]}" test_gpu_check.py)

echo "== per-stream timing: workers on their own streams, device_ms, overhead against a bare CUDA-event loop"
cat > "$WORK/stream_check.py" <<'EOF'
import contextlib
import os
import statistics
import sys
import threading
import time

import torch

import pytest_neuronperf as npf
from npf_gpu_models import CheckMLP, HostGaps
from pytest_neuronperf.baselines.environment import fingerprint

DEVICE = os.environ["NPF_CHECK_DEVICE"]
CUDA = DEVICE == "cuda"
DURATION_S = 5.0
WARMUP = 20
problems = []


def ms(value):
    return "-" if value is None else f"{value:.3f}"


def harness(model, x, workers):
    (r,) = npf.benchmark(model, x, n_models=1, workers_per_model=workers, duration=DURATION_S, warmup=WARMUP,
                         device_type=DEVICE)
    label = f"{model.__name__} workers_per_model={workers}"
    if r["status"] != "finished":
        sys.exit(f"FAILED: {label}: {r['status']} {r['reason']}")
    print(f"  harness {label}: {r['throughput_avg']:.0f} inf/s, latency p50 {ms(r['latency_ms_p50'])} ms "
          f"p99 {ms(r['latency_ms_p99'])} ms | device p50 {ms(r['device_ms_p50'])} ms "
          f"p99 {ms(r['device_ms_p99'])} ms | intra-op threads/worker {r['intra_op_threads']}")
    if CUDA:
        if r["device_ms_p50"] is None or r["device_ms_p99"] is None:
            problems.append(f"{label}: no device_ms in the report")
        elif r["device_ms_p50"] > r["latency_ms_p50"]:
            problems.append(f"{label}: device p50 {r['device_ms_p50']} ms is above latency p50 "
                            f"{r['latency_ms_p50']} ms")
    return r


def bare(model_cls, x, workers):
    """The same calls without the harness: w threads of this process, each on its own stream, timed by events."""
    device = torch.device("cuda:0" if CUDA else "cpu")
    model = model_cls().to(device).eval()
    x = x.to(device)
    if CUDA:
        torch.cuda.synchronize(device)
    window = {}

    def open_window():
        window["stop"] = time.monotonic_ns() + int(DURATION_S * 1e9)

    barrier = threading.Barrier(workers, action=open_window)
    results = [None] * workers

    def work(i):
        stream = torch.cuda.Stream(device) if CUDA else None
        with torch.inference_mode(), (torch.cuda.stream(stream) if CUDA else contextlib.nullcontext()):
            if CUDA:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(WARMUP):
                model(x)
                if CUDA:
                    stream.synchronize()
            barrier.wait()
            stop = window["stop"]
            latencies, device_ms = [], []
            while True:
                t0 = time.monotonic_ns()
                if CUDA:
                    start.record(stream)
                model(x)
                if CUDA:
                    end.record(stream)
                    stream.synchronize()
                t1 = time.monotonic_ns()
                if t1 > stop:
                    break
                latencies.append(t1 - t0)
                if CUDA:
                    device_ms.append(start.elapsed_time(end))
            results[i] = (latencies, device_ms)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies = [v for lat, _ in results for v in lat]
    device_ms = [v for _, dev in results for v in dev]
    rate = len(latencies) / DURATION_S
    p50 = statistics.median(latencies) / 1e6
    print(f"  bare    {model_cls.__name__} workers={workers}: {rate:.0f} inf/s, latency p50 {p50:.3f} ms | "
          f"device p50 {ms(statistics.median(device_ms) if device_ms else None)} ms")
    return rate, p50


print(f"HostGaps: two matmuls with a {HostGaps.GAP_S * 1e3:g} ms host sleep between them, batch 64")
gaps = {w: harness(HostGaps, torch.rand(64, HostGaps().a.shape[0]), w) for w in (1, 2)}
speedup = gaps[2]["throughput_avg"] / gaps[1]["throughput_avg"]
print(f"  workers_per_model=2 / 1: {speedup:.2f}x the throughput")
if speedup < 1.5:
    problems.append(f"HostGaps: 2 workers gave {speedup:.2f}x the throughput of 1, expected at least 1.5x (the "
                    "second worker's GPU work should fill the first one's host gap)")

# Every harness run comes before the bare loops, which create a CUDA context in this process.
x = torch.rand(1, 1024)
print("CheckMLP, batch 1:")
mlp = {w: harness(CheckMLP, x, w) for w in (1, 2)}
print("harness against a bare loop of the same calls (CheckMLP, batch 1):")
for w in (1, 2):
    rate, p50 = bare(CheckMLP, x, w)
    r = mlp[w]
    print(f"  workers={w}: harness / bare throughput {r['throughput_avg'] / rate:.3f}, "
          f"latency p50 {(r['latency_ms_p50'] - p50) * 1e3:+.1f} us per call")

fp = fingerprint(DEVICE)
print("fingerprint: " + ", ".join(f"{k}={fp[k]}" for k in ("gpu_name", "cuda_driver", "cuda_runtime")))
if CUDA:
    problems += [f"fingerprint {k}={fp[k]!r}" for k in ("gpu_name", "cuda_driver", "cuda_runtime")
                 if fp[k] in ("unknown", "not installed", "n/a", "none")]
if problems:
    sys.exit("FAILED:\n  " + "\n  ".join(problems))
print(f"OK: per-stream timing on {DEVICE}")
EOF
(cd "$WORK" && timeout 300 "$VPY" stream_check.py)
echo "== gpu_check: all steps passed"
