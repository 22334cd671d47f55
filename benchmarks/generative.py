"""Generative (streaming) models: token timing against a generator of known shape, the gate on a slower
decode, and the harness's own cost per token.

    python benchmarks/generative.py            # full run (about 2 minutes on 2 cores, 3 if the gate adds rounds)
    python benchmarks/generative.py --quick    # short windows, a smoke check (about a minute)
    python benchmarks/generative.py --duration 20 --regress-duration 30 --tokens 2000

Every figure is a ratio against a reference known in advance or measured in the same run:
1. Token timing: a synthetic generator (examples/generative_models.py) sleeps to each token's scheduled
   time, the first 20 ms after the request starts and every next one 5 ms later, 32 tokens, so its
   schedule sets TTFT = 20 ms, TPOT = 5 ms and e2e = 20 + 31 * 5 = 175 ms (a late wake-up delays its own
   token only, and the next is due on time); a sleeping worker holds no GIL, so two workers in one copy
   should double the output tokens/s (workers * 32 / 175 ms) and leave every latency as it was. Tokens/s
   is also set against workers * 32 / the measured mean e2e: what is left of that gap is the harness's
   time between one request's last token and the next request's start, and the window's edges (it opens
   as requests start, so it can miss up to a prefill's worth of tokens, 20 ms x 183 tok/s = 4 tokens:
   0.2% of a 10-s window, 1% of 2 s).
2. The gate, through the real plugin: ``python -m pytest`` on a generated test file whose marker
   benchmarks the same generator class (prefill 2 ms, 0.5 ms per token, 16 tokens: short requests, so
   each round has enough of them for a p99), with the generator's shape read from an environment
   variable by the model factory, since model copies build the model in processes of their own. A
   baseline is saved, then the same test runs with every decode step 10% slower: TPOT must fail and
   TTFT, whose prefill did not change, must pass. The unchanged generator against the same baseline is
   the control: its test should pass. Two workers give each round about 1,000 requests, just above the
   662 a p99 needs when they are independent; on a busy machine their effective number falls below it,
   and the p99s come out inconclusive (too few samples), which fails no test.
3. Harness cost per token: a generator that yields N token ids with no work between them, streamed
   through ``benchmark()`` (one copy, one worker: 1 / output tokens/s is the time per token, the
   per-request work spread over N tokens; e2e p50 / N is the part spent inside a request), against a
   bare ``for`` loop over the same generator in this process, and against that loop with the one clock
   read and list append a per-token stamp needs at the least.

It is a measurement, not a test: it exits 0 whatever it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))

import torch
from generative_models import synthetic
from ratio_table import REFERENCE, Row, ratio_row, table, within

import pytest_neuronperf as npf

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PREFILL_MS, DECODE_MS, TOKENS = 20.0, 5.0, 32
# The regression check's generator: short requests, so a 10-s test has hundreds per round.
REGRESS_SHAPE = (2.0, 0.5, 16)
SLOWER_DECODE = 1.10
SHAPE_ENV = "NPF_GEN_SHAPE"
COUNT_ENV = "NPF_GEN_COUNT"
PROMPT = torch.zeros(1, 8, dtype=torch.int64)


class Counting:
    """Yields NPF_GEN_COUNT token ids (default 1000) and does nothing else: all that is timed is the harness.

    The count comes from the environment because each model copy builds its own instance.
    """

    def __init__(self) -> None:
        self.n = int(os.environ.get(COUNT_ENV, "1000"))

    def __call__(self, x: Any = None) -> Iterator[int]:
        yield from range(self.n)


@dataclass(frozen=True)
class Settings:
    window_s: float
    regress_s: float
    overhead_s: float
    tokens: int
    quick: bool


WITHIN_3 = within(0.03)


# --- 1. token timing against the generator's schedule --------------------------------------------

def token_timing(cfg: Settings) -> list[Row]:
    reports = npf.benchmark(synthetic, PROMPT, streaming=True, output_tokens=TOKENS, n_models=1,
                            workers_per_model=[1, 2], duration=cfg.window_s, verbosity=0)
    e2e_ms = PREFILL_MS + (TOKENS - 1) * DECODE_MS
    rows: list[Row] = []
    for r in reports:
        assert isinstance(r, dict)
        w = int(r["workers_per_model"])
        theory = w * TOKENS / (e2e_ms / 1e3)
        per_request = w * TOKENS / (float(r["e2e_avg_ms"]) / 1e3)
        print(f"[1] workers={w}: {r['latency_samples']} requests, TTFT p50 {r['ttft_ms_p50']} ms "
              f"(p99 {r['ttft_ms_p99']}), TPOT p50 {r['tpot_ms_p50']} ms (p99 {r['tpot_ms_p99']}), e2e p50 "
              f"{r['e2e_ms_p50']} ms (mean {r['e2e_avg_ms']}), {r['output_tokens_per_s']} tok/s, "
              f"{r['output_tokens']} tokens/request, status {r['status']}")
        rows += [
            ratio_row(f"w={w} TTFT p50 vs prefill", float(r["ttft_ms_p50"]), PREFILL_MS, "ms", WITHIN_3),
            ratio_row(f"w={w} TPOT p50 vs decode step", float(r["tpot_ms_p50"]), DECODE_MS, "ms", WITHIN_3),
            ratio_row(f"w={w} e2e p50 vs 20 + 31 x 5 ms", float(r["e2e_ms_p50"]), e2e_ms, "ms", WITHIN_3),
            ratio_row(f"w={w} output tokens/s vs {w} x 32 / 175 ms", float(r["output_tokens_per_s"]), theory,
                      "tok/s", WITHIN_3, digits=1),
            ratio_row(f"w={w} output tokens/s vs {w} x 32 / measured mean e2e", float(r["output_tokens_per_s"]),
                      per_request, "tok/s", REFERENCE, digits=1),
        ]
    return rows


# --- 2. the gate on a slower decode, through the plugin ------------------------------------------

TEST_FILE = '''"""Generated by benchmarks/generative.py: a synthetic generator under the plugin's gate."""

import os
import sys

sys.path.insert(0, {examples!r})

import pytest
import torch
from generative_models import Synthetic


def model() -> Synthetic:
    # Each model copy builds the model in a process of its own, which inherits the environment.
    prefill_ms, decode_ms, tokens = os.environ[{env!r}].split(",")
    return Synthetic(float(prefill_ms), float(decode_ms), int(tokens))


@pytest.mark.neuron_benchmark(model=model, inputs=torch.zeros(1, 8, dtype=torch.int64), streaming=True,
                              output_tokens={tokens}, device_type="cpu", n_models=1, workers_per_model=2,
                              duration={duration})
def test_decode() -> None:
    pass
'''

_OUTCOME = re.compile(r"^(FAILED|ERROR|PASSED)\b|^neuronperf:|^baselines saved|^=*\s*\d+ (passed|failed|error)|"
                      r"^\d+ (passed|failed|error)")


@dataclass
class GateRun:
    label: str
    rc: int
    verdict: str
    judgements: dict[str, dict[str, Any]]
    seconds: float
    saved: bool = False


def run_pytest(folder: Path, label: str, shape: tuple[float, float, int], extra: list[str]) -> GateRun:
    results = folder / f"{label.replace(' ', '_')}.json"
    env = {**os.environ, SHAPE_ENV: ",".join(f"{v:g}" for v in shape)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "test_decode.py",
           f"--npf-json={results}", *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.perf_counter() - t0
    print(f"[2] {label}: prefill {shape[0]:g} ms, decode {shape[1]:g} ms/token, {shape[2]} tokens "
          f"({' '.join(extra) or 'compare'}), {seconds:.0f} s, exit {done.returncode}")
    for line in done.stdout.splitlines():
        if _OUTCOME.search(line):
            print(f"[2]   | {line}")
    if not results.exists():
        print(f"[2]   no results file; pytest said:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        return GateRun(label, done.returncode, "error", {}, seconds, "baselines saved" in done.stdout)
    data = json.loads(results.read_text())
    (measurement,) = data["measurements"]
    judgements: dict[str, dict[str, Any]] = {}
    for outcome in measurement["outcomes"]:
        for j in outcome["judgements"]:
            judgements[j["metric"]] = j
            print(f"[2]   {j['verdict']:<12} {j['message']}")
        for failure in outcome["limit_failures"]:
            print(f"[2]   limit        {failure}")
        if outcome.get("note"):
            print(f"[2]   note         {outcome['note']}")
    return GateRun(label, done.returncode, str(measurement["verdict"]), judgements, seconds,
                   "baselines saved" in done.stdout)


def verdict_row(run: GateRun, metric: str, wanted: str) -> Row:
    j = run.judgements.get(metric)
    if j is None:
        return Row(f"{run.label}: {metric}", "not judged", "-", None, wanted, False)
    change = j.get("change")
    ratio, shown = None, str(j["verdict"])
    if isinstance(change, (int, float)):
        ratio, shown = 1.0 + change, f"{j['verdict']} ({change:+.1%})"
    return Row(f"{run.label}: {metric} verdict (current / baseline)", shown, "baseline", ratio, wanted,
               j["verdict"] == wanted)


def gate(cfg: Settings) -> list[Row]:
    prefill, decode, tokens = REGRESS_SHAPE
    slower = (prefill, decode * SLOWER_DECODE, tokens)
    with tempfile.TemporaryDirectory(prefix="npf-generative-") as tmp:
        folder = Path(tmp)
        # An ini file makes the folder pytest's rootdir, so the baseline is stored inside it.
        (folder / "pytest.ini").write_text("[pytest]\n")
        (folder / "test_decode.py").write_text(TEST_FILE.format(examples=str(EXAMPLES), env=SHAPE_ENV,
                                                                tokens=tokens, duration=cfg.regress_s))
        saved = run_pytest(folder, "baseline", REGRESS_SHAPE, ["--npf-save-baseline"])
        slow = run_pytest(folder, "decode +10%", slower, [])
        same = run_pytest(folder, "unchanged", REGRESS_SHAPE, [])
    failed = sorted(m for m, j in slow.judgements.items() if j["verdict"] == "fail")
    unsettled = sorted(m for m, j in same.judgements.items() if j["verdict"] != "pass")
    print(f"[2] decode +10%: failed {', '.join(failed) or 'nothing'}; measurement verdict {slow.verdict} "
          f"(pytest exit {slow.rc}); unchanged: measurement verdict {same.verdict} (pytest exit {same.rc}), "
          f"not passed: {', '.join(unsettled) or 'none'}")
    return [
        Row("baseline saved", "saved" if saved.saved else f"not saved (exit {saved.rc})", "-", None, "saved",
            saved.saved),
        verdict_row(slow, "tpot_p50", "fail"),
        verdict_row(slow, "ttft_p50", "pass"),
        Row("decode +10%: metrics failed", ", ".join(failed) or "none", "-", None, "-", None),
        Row("decode +10%: pytest outcome", f"{'failed' if slow.rc == 1 else 'passed' if slow.rc == 0 else 'error'} "
            f"({slow.verdict})", "-", None, "failed", slow.rc == 1),
        verdict_row(same, "tpot_p50", "pass"),
        verdict_row(same, "ttft_p50", "pass"),
        Row("unchanged: metrics not passed", ", ".join(unsettled) or "none", "-", None, "-", None),
        Row("unchanged: pytest outcome", f"{'passed' if same.rc == 0 else 'failed' if same.rc == 1 else 'error'} "
            f"({same.verdict})", "-", None, "passed", same.rc == 0),
    ]


# --- 3. the harness's cost per token -------------------------------------------------------------

def bare_ns_per_token(n: int, seconds: float, stamped: bool) -> float:
    """Per token, this process consuming Counting's stream for ``seconds`` (plus one clock read and
    append per token when ``stamped``)."""
    os.environ[COUNT_ENV] = str(n)
    model = Counting()
    clock = time.perf_counter_ns
    tokens = 0
    t0 = clock()
    stop = t0 + int(seconds * 1e9)
    while clock() < stop:
        if stamped:
            times: list[int] = []
            stamp = times.append
            for _ in model(PROMPT):
                stamp(clock())
        else:
            for _ in model(PROMPT):
                pass
        tokens += n
    return (clock() - t0) / tokens


def overhead(cfg: Settings) -> list[Row]:
    n = cfg.tokens
    # The copies read it when they build the model (they inherit this process's environment).
    os.environ[COUNT_ENV] = str(n)
    (report,) = npf.benchmark(Counting, PROMPT, streaming=True, output_tokens=n, n_models=1, workers_per_model=1,
                              duration=cfg.overhead_s, verbosity=0)
    assert isinstance(report, dict)
    harness = 1e9 / float(report["output_tokens_per_s"])
    # The request's own span, first call to last token: what is left of ``harness`` is the work between requests.
    inside = float(report["e2e_ms_p50"]) * 1e6 / n
    bare = bare_ns_per_token(n, min(cfg.overhead_s, 3.0), stamped=False)
    stamped = bare_ns_per_token(n, min(cfg.overhead_s, 3.0), stamped=True)
    print(f"[3] {n} tokens/request: harness {report['output_tokens_per_s']:.0f} tok/s = {harness:.0f} ns/token "
          f"({report['latency_samples']} requests, e2e p50 {report['e2e_ms_p50']} ms, status {report['status']}); "
          f"bare loop {bare:.0f} ns/token; with a clock read and append {stamped:.0f} ns/token")
    return [
        ratio_row(f"harness ns/token ({n} tokens/request) vs bare loop", harness, bare, "ns", REFERENCE, digits=0),
        ratio_row("harness ns/token vs loop + clock read + append", harness, stamped, "ns", REFERENCE, digits=0),
        ratio_row("of which inside requests (e2e p50 / N) vs bare loop", inside, bare, "ns", REFERENCE, digits=0),
    ]


# --- output ---------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> Settings:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short windows: a smoke check, not a measurement")
    ap.add_argument("--duration", type=float, help="each token-timing window (default 10 s; 2 s with --quick)")
    ap.add_argument("--regress-duration", type=float, help="each gated test's duration, split over its rounds "
                    "(default 15 s; 4 s with --quick)")
    ap.add_argument("--overhead-duration", type=float, help="the harness-cost window (default 5 s; 2 s with --quick)")
    ap.add_argument("--tokens", type=int, default=1000, help="tokens per request of the harness-cost generator")
    a = ap.parse_args(argv)
    window = a.duration if a.duration is not None else (2.0 if a.quick else 10.0)
    regress = a.regress_duration if a.regress_duration is not None else (4.0 if a.quick else 15.0)
    cost = a.overhead_duration if a.overhead_duration is not None else (2.0 if a.quick else 5.0)
    return Settings(window, regress, cost, a.tokens, a.quick)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    t0 = time.perf_counter()
    rows = token_timing(cfg) + gate(cfg) + overhead(cfg)
    print()
    print(f"token timing windows {cfg.window_s:g} s, gated tests {cfg.regress_s:g} s, harness window "
          f"{cfg.overhead_s:g} s, torch {torch.__version__}, {os.cpu_count()} CPUs, total "
          f"{time.perf_counter() - t0:.0f} s")
    print(table(rows))
    return 0


if __name__ == "__main__":  # model copies import this module again; the guard keeps them from re-running it
    sys.exit(main())
