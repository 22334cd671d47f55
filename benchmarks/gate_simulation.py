"""Seeded simulations of the gate's decisions, printed as the Markdown tables of docs/gate-method.md.

Every verdict comes from the plugin's own ``judge_metric`` and ``needs_confirmation`` on synthetic
per-round throughputs (log throughput = level + session offset + round noise); no model runs.
A sequential run judges after 3 rounds per side, then adds one round (A/B: one pair) at a time
while the judgement asks for more, up to 10, as ``--npf-rounds=3 --npf-max-rounds=10`` does.
Only throughput is judged (one comparison, so Holm's correction changes nothing); tolerance 5%.

    python benchmarks/gate_simulation.py                  # 2000 trials a cell: ~100 CPU-s, a minute on 2 idle cores
    python benchmarks/gate_simulation.py --trials 500     # a quick look
    python benchmarks/gate_simulation.py --jobs 1 --seed 7

Tables:

(a) A/B paired sequential (``--npf-against``) vs a stored baseline judged by Welch, when whole
    sessions move (a session offset: another machine of the fleet, a noisy neighbour that day).
(b) Random effects: a baseline accumulated over k sessions, judged with and without the rounds'
    session labels (``baseline_sessions=``, from ``pytest_neuronperf.stats.sessions``).
(c) Sequential rounds (3..10) vs a fixed 3 rounds (one look), A/B paired.

The t quantile (found by bisection in ``stats.distributions``) is memoised and solved by Newton's
method here, for speed only: the script checks that both agree to 1e-9 before it starts.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.gate import judge
from pytest_neuronperf.gate.judge import Verdict, judge_metric, needs_confirmation
from pytest_neuronperf.gate.sequential import Looks
from pytest_neuronperf.stats import distributions
from pytest_neuronperf.stats.rounds import RoundSummary

FloatArray = npt.NDArray[np.float64]

TOLERANCE = 0.05
FIRST, LAST = 3, 10
LEVEL = 1000.0
SEQUENTIAL = Looks(first=FIRST, last=LAST)
FIXED = Looks(first=FIRST, last=FIRST)
NOISES_A, OFFSETS_A = (0.01, 0.03), (0.0, 0.03, 0.06)
# The A/B side of table (a) is simulated once per noise level, under the largest session offset: the
# offset multiplies both rounds of every pair, so it cancels in the per-pair ratios the paired t
# judges, and with the same round noise every offset gives the same verdicts (a full run showed
# identical rows; tests/gate/test_paired.py checks the cancellation).
AB_OFFSET = max(OFFSETS_A)
NOISE_B, OFFSET_B, SESSIONS_B = 0.01, 0.03, (1, 2, 3, 5)
NOISE_C = 0.02

# ---------------------------------------------------------------- a faster t quantile, same answers

_bisection_t_ppf: Callable[[float, float], float] = distributions.t_ppf


def _t_pdf(t: float, df: float) -> float:
    log_c = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1.0) / 2.0 * math.log1p(t * t / df))


def _normal_start(p: float, df: float) -> tuple[float, float]:
    """(normal quantile, Cornish-Fisher start) for p > 0.5: the first is a lower bound of the t quantile."""
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4.0
    g2 = (5.0 * z**5 + 16.0 * z**3 + 3.0 * z) / 96.0
    g3 = (3.0 * z**7 + 19.0 * z**5 + 17.0 * z**3 - 15.0 * z) / 384.0
    return z, z + g1 / df + g2 / df**2 + g3 / df**3


def newton_t_ppf(p: float, df: float) -> float:
    """The t with t_cdf(t, df) == p: Newton's method on the log of the upper tail against log t.

    Near-power-law tails make that nearly a straight line, so 2 or 3 steps from a Cornish-Fisher
    start suffice; it stops after a step below 1e-7 in log t (convergence is quadratic, so the
    result is then exact to about 1e-13, bisection's own resolution). Anything odd falls back to
    the bisection of :mod:`~pytest_neuronperf.stats.distributions`.
    """
    if not 0.0 < p < 1.0 or df <= 0:
        return _bisection_t_ppf(p, df)  # with its errors
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -newton_t_ppf(1.0 - p, df)
    z, start = _normal_start(p, df)
    # The normal quantile is a lower bound of the t quantile: no step may leave the root's side of it.
    floor, target = math.log(z), math.log1p(-p)
    u = max(floor, math.log(start)) if start > 0 else floor
    for _ in range(50):
        t = math.exp(u)
        tail = 1.0 - distributions.t_cdf(t, df)
        if not tail > 0.0 or not math.isfinite(t):
            break
        step = (math.log(tail) - target) * tail / (_t_pdf(t, df) * t)
        u = max(floor, u + step)
        if abs(step) <= 1e-7:
            return math.exp(u)
    return _bisection_t_ppf(p, df)


def install_fast_t_ppf() -> None:
    """Replace the t quantile the judge uses by a memoised Newton solver, after checking it agrees."""
    if getattr(getattr(judge, "t_ppf", None), "fast", False):
        return
    for df in (1.0, 1.3, 2.0, 2.7, 4.0, 9.0, 17.5, 40.0, 300.0):
        for p in (0.001, 0.6, 0.9, 0.975, 0.9925, 0.99, 0.9975, 0.999, 0.9999):
            want, got = _bisection_t_ppf(p, df), newton_t_ppf(p, df)
            if not math.isclose(want, got, rel_tol=1e-9):
                raise AssertionError(f"t_ppf({p}, {df}): Newton {got!r} vs bisection {want!r}")
    cached = functools.lru_cache(maxsize=1 << 16)(newton_t_ppf)
    cached.fast = True  # type: ignore[attr-defined]
    # mean_ci looks it up in distributions, the judge in its own namespace.
    setattr(distributions, "t_ppf", cached)  # noqa: B010
    setattr(judge, "t_ppf", cached)  # noqa: B010


# ---------------------------------------------------------------- one run of the gate


def make_round(throughput: float) -> RoundSummary:
    # Latency percentiles are not judged here; their sample counts are ample so they never interfere.
    return RoundSummary(throughput, (throughput * 0.99, throughput * 1.01), 10.0, (9.9, 10.1), 20.0, (19.6, 20.4),
                        10_000, 5000.0, 3000.0, 2.0, True, 0.02)


def sequential_run(baseline: Sequence[RoundSummary], current: Sequence[RoundSummary], looks: Looks, *,
                   paired: bool, sessions: Sequence[str | None] | None = None) -> tuple[Verdict, int]:
    """(verdict, current rounds used): judge after ``looks.first`` rounds, then one more at a time."""
    n = looks.first
    while True:
        # A/B: round i of each side forms pair i (judge_metric keeps their common prefix).
        base = baseline[:n] if paired else baseline
        j = judge_metric("throughput", base, current[:n], TOLERANCE, looks=looks, paired=paired,
                         baseline_sessions=sessions)
        if not needs_confirmation([j]) or not looks.more_allowed(n):
            return j.verdict, n
        n += 1


@dataclass
class Tally:
    verdicts: dict[Verdict, int] = field(default_factory=lambda: dict.fromkeys(
        (Verdict.FAIL, Verdict.PASS, Verdict.INCONCLUSIVE), 0))
    rounds: int = 0
    trials: int = 0

    def add(self, verdict: Verdict, rounds: int) -> None:
        self.verdicts[verdict] += 1
        self.rounds += rounds
        self.trials += 1

    def rate(self, verdict: Verdict) -> float:
        return self.verdicts[verdict] / max(1, self.trials)

    @property
    def mean_rounds(self) -> float:
        return self.rounds / max(1, self.trials)


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one named stream: the same name gives the same draws in every cell that uses it."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def _levels(offsets: FloatArray, noise: FloatArray, change: float) -> list[list[RoundSummary]]:
    logs = math.log(LEVEL) + math.log1p(change) + offsets[:, None] + noise
    return [[make_round(v) for v in row] for row in np.exp(logs)]


# ---------------------------------------------------------------- the cells


@dataclass(frozen=True)
class Cell:
    table: str
    method: str
    noise: float
    offset_sd: float
    change: float
    sessions: int = 1
    labelled: bool = False
    looks: Looks = SEQUENTIAL


def run_cell(cell: Cell, trials: int, seed: int) -> Tally:
    install_fast_t_ppf()
    tally = Tally()
    # Common random numbers: the round noise depends on the noise level only (and the offsets on
    # their sd), so methods and changes in one row meet the same draws.
    round_noise = _rng(seed, cell.table, "rounds", cell.noise)
    ref_noise = round_noise.normal(0.0, cell.noise, size=(trials, LAST * max(1, cell.sessions)))
    cur_noise = round_noise.normal(0.0, cell.noise, size=(trials, LAST))
    offsets = _rng(seed, cell.table, "offsets", cell.offset_sd)
    if cell.method == "ab":
        # Both sides in one session: they share its offset.
        shared = offsets.normal(0.0, cell.offset_sd, size=trials)
        refs, curs = _levels(shared, ref_noise[:, :LAST], 0.0), _levels(shared, cur_noise, cell.change)
        for ref, cur in zip(refs, curs, strict=True):
            tally.add(*sequential_run(ref, cur, cell.looks, paired=True))
    elif cell.method == "stored":
        # The baseline's one session and this one each drew their own offset.
        o_b, o_c = offsets.normal(0.0, cell.offset_sd, size=(2, trials))
        bases, curs = _levels(o_b, ref_noise[:, :FIRST], 0.0), _levels(o_c, cur_noise, cell.change)
        for base, cur in zip(bases, curs, strict=True):
            tally.add(*sequential_run(base, cur, cell.looks, paired=False))
    elif cell.method == "sessions":
        k = cell.sessions
        per_session = offsets.normal(0.0, cell.offset_sd, size=(trials, k + 1))
        base_offsets = np.repeat(per_session[:, :k], FIRST, axis=1)
        logs = math.log(LEVEL) + base_offsets + ref_noise[:, : k * FIRST]
        bases = [[make_round(v) for v in row] for row in np.exp(logs)]
        curs = _levels(per_session[:, k], cur_noise, cell.change)
        labels = [f"session-{s}" for s in range(k) for _ in range(FIRST)] if cell.labelled else None
        for base, cur in zip(bases, curs, strict=True):
            tally.add(*sequential_run(base, cur, cell.looks, paired=False, sessions=labels))
    else:
        raise ValueError(f"unknown method {cell.method!r}")
    return tally


# ---------------------------------------------------------------- tables


def pct(rate: float) -> str:
    if 0.0 < rate < 0.01:
        return f"{100.0 * rate:.2f}%"
    return f"{100.0 * rate:.1f}%"


def table_a(results: dict[Cell, Tally]) -> list[str]:
    lines = [
        "### (a) A/B paired sequential vs stored baseline (Welch), when whole sessions move",
        "",
        "Per-round noise: each round's own lognormal noise. Session offset: one lognormal factor per pytest session "
        "(the A/B run's two sides share it; the stored baseline's session and the current one each draw their "
        f"own). Baseline: {FIRST} rounds of one earlier session. Both sequential, {FIRST}..{LAST} rounds per side. "
        "Detection: FAIL on -10% throughput, tolerance 5%.",
        "",
        "| per-round noise | session offset sd | method | false FAIL (unchanged) | detects -10% "
        "| inconclusive (unchanged / -10%) | mean rounds per side (unchanged / -10%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for noise in NOISES_A:
        for offset in OFFSETS_A:
            for method, name in (("ab", "A/B paired"), ("stored", "stored baseline, Welch")):
                simulated = AB_OFFSET if method == "ab" else offset
                same = results[Cell("a", method, noise, simulated, 0.0)]
                slow = results[Cell("a", method, noise, simulated, -0.10)]
                lines.append(
                    f"| {noise:.0%} | {offset:.0%} | {name} | {pct(same.rate(Verdict.FAIL))} "
                    f"| {pct(slow.rate(Verdict.FAIL))} "
                    f"| {pct(same.rate(Verdict.INCONCLUSIVE))} / {pct(slow.rate(Verdict.INCONCLUSIVE))} "
                    f"| {same.mean_rounds:.1f} / {slow.mean_rounds:.1f} |")
    lines += ["", "The A/B rows are one simulation per noise level (under the largest offset): a session offset "
                  "multiplies both rounds of every pair and cancels in their ratio, so it cannot change an A/B "
                  "verdict. An A/B run measures both sides, so its rounds per side cost twice the time of a "
                  "stored-baseline run's; in exchange it needs no earlier session."]
    return lines


def table_b(results: dict[Cell, Tally], noise: float, offset: float) -> list[str]:
    lines = [
        "### (b) A baseline accumulated over k sessions: random effects",
        "",
        f"Each baseline session saved {FIRST} rounds; session offsets sd {offset:.0%}, per-round noise {noise:.0%}; "
        "the current session draws its own offset. Welch on all baseline rounds vs the current rounds "
        f"(sequential {FIRST}..{LAST}), without and with the rounds' session labels (between-session variance).",
        "",
        "| baseline sessions | session labels | false FAIL (unchanged) | detects -10% "
        "| inconclusive (unchanged / -10%) | mean rounds (unchanged / -10%) |",
        "|---|---|---|---|---|---|",
    ]
    for k in SESSIONS_B:
        for labelled in (False, True):
            if k == 1:
                # One session: table (a)'s stored-baseline run under the same noise and offset, the same
                # model; with a single label judge_metric has no between-session spread to estimate.
                same, slow = (results[Cell("a", "stored", noise, offset, change)] for change in (0.0, -0.10))
            else:
                same = results[Cell("b", "sessions", noise, offset, 0.0, sessions=k, labelled=labelled)]
                slow = results[Cell("b", "sessions", noise, offset, -0.10, sessions=k, labelled=labelled)]
            lines.append(
                f"| {k} ({k * FIRST} rounds) | {'yes' if labelled else 'no'} | {pct(same.rate(Verdict.FAIL))} "
                f"| {pct(slow.rate(Verdict.FAIL))} "
                f"| {pct(same.rate(Verdict.INCONCLUSIVE))} / {pct(slow.rate(Verdict.INCONCLUSIVE))} "
                f"| {same.mean_rounds:.1f} / {slow.mean_rounds:.1f} |")
    lines += ["", "With one session there is no between-session spread to estimate, so the labels change nothing: "
                  "both k = 1 rows are table (a)'s stored-baseline run at the same noise and offset."]
    return lines


def table_c(results: dict[Cell, Tally], noise: float) -> list[str]:
    lines = [
        f"### (c) Sequential rounds ({FIRST}..{LAST}) vs a fixed {FIRST} rounds (one look), A/B paired",
        "",
        f"Per-round noise {noise:.0%}, no session offset (it cancels in pairs), tolerance 5%; fixed: alpha 0.01 and "
        f"beta 0.025 at the one look; sequential: the same spent over the looks at {FIRST}..{LAST} pairs.",
        "",
        "| throughput change | schedule | fail | pass | inconclusive | mean rounds per side |",
        "|---|---|---|---|---|---|",
    ]
    for change in (0.0, -0.05, -0.10, -0.20):
        for looks, name in ((FIXED, f"fixed {FIRST}"), (SEQUENTIAL, f"sequential {FIRST}..{LAST}")):
            t = results[Cell("c", "ab", noise, 0.0, change, looks=looks)]
            label = f"{change:+.0%}" + (" (at the tolerance)" if change == -TOLERANCE else "")
            lines.append(f"| {label} | {name} | {pct(t.rate(Verdict.FAIL))} | {pct(t.rate(Verdict.PASS))} "
                         f"| {pct(t.rate(Verdict.INCONCLUSIVE))} | {t.mean_rounds:.1f} |")
    return lines


def between_session_support() -> str | None:
    """None when judge_metric can use session labels, else why not."""
    try:
        from pytest_neuronperf.stats.sessions import between_session_variance, session_groups  # noqa: F401
    except ImportError as exc:
        return f"pytest_neuronperf.stats.sessions.between_session_variance is not importable yet ({exc})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=2000, help="trials per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=20240601, help="base seed (default 20240601)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.jobs < 1:
        parser.error("--trials and --jobs must be at least 1")
    install_fast_t_ppf()
    if NOISE_B not in NOISES_A or OFFSET_B not in OFFSETS_A:
        raise AssertionError("table (b)'s k = 1 rows reuse a table (a) cell: its noise and offset must be there")

    cells = [Cell("a", "stored", noise, offset, change)
             for noise in NOISES_A for offset in OFFSETS_A for change in (0.0, -0.10)]
    cells += [Cell("a", "ab", noise, AB_OFFSET, change) for noise in NOISES_A for change in (0.0, -0.10)]
    missing = between_session_support()
    if missing is None:
        # k = 1 is table (a)'s stored-baseline cell (see table_b).
        cells += [Cell("b", "sessions", NOISE_B, OFFSET_B, change, sessions=k, labelled=labelled)
                  for k in SESSIONS_B if k > 1 for labelled in (False, True) for change in (0.0, -0.10)]
    cells += [Cell("c", "ab", NOISE_C, 0.0, change, looks=looks)
              for change in (0.0, -0.05, -0.10, -0.20) for looks in (FIXED, SEQUENTIAL)]

    started = time.perf_counter()
    if args.jobs == 1:
        tallies = [run_cell(c, args.trials, args.seed) for c in cells]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, initializer=install_fast_t_ppf) as pool:
            # Slowest first (Welch cells that run to the last look), so the workers finish together.
            order = sorted(range(len(cells)), key=lambda i: (cells[i].method == "ab", i))
            futures = {i: pool.submit(run_cell, cells[i], args.trials, args.seed) for i in order}
            tallies = [futures[i].result() for i in range(len(cells))]
    results = dict(zip(cells, tallies, strict=True))
    elapsed = time.perf_counter() - started

    margin = 1.96 * math.sqrt(0.01 * 0.99 / args.trials)
    out = [
        f"Seeded simulations of the gate ({args.trials} trials per cell, seed {args.seed}; "
        f"`python benchmarks/gate_simulation.py --trials {args.trials} --seed {args.seed}`). "
        f"Tolerance 5%, alpha 0.01, beta 0.025, throughput only. A rate of 1% is known to about "
        f"±{100 * margin:.1f} points at this many trials.",
        "",
        *table_a(results),
        "",
    ]
    if missing is None:
        out += [*table_b(results, NOISE_B, OFFSET_B), ""]
    else:
        out += ["### (b) A baseline accumulated over k sessions: random effects", "",
                f"Skipped: {missing}.", ""]
    out += [*table_c(results, NOISE_C), "", f"({len(cells)} cells in {elapsed:.0f} s with {args.jobs} worker(s).)"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
