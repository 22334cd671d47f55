#!/usr/bin/env bash
# End-to-end check of the CUDA backend on a machine with an NVIDIA GPU (about a minute, at most 3).
#
#   bash benchmarks/gpu_check.sh            # uses python3 from PATH, which must have a CUDA build of torch
#   PYTHON=/opt/venv/bin/python bash benchmarks/gpu_check.sh
#
# It installs this checkout into a throw-away venv that sees the system's torch (nothing is downloaded),
# benchmarks a small MLP through pytest_neuronperf.benchmark(..., device_type="cuda"), then runs a
# marker test and a fixture test through pytest, printing the reports. It fails when a configuration
# did not finish, a copy's model or inputs were not on its GPU, or the calling process created a CUDA
# context. NPF_CHECK_DEVICE=cpu runs the same steps on the CPU (to check this script without a GPU).
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
"""A model for the check; it refuses to run anywhere but on the device under test."""
import os

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
echo "== gpu_check: all steps passed"
