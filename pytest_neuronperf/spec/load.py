"""Open-loop load: requests on their own schedule, and the arrival timeline each round replays.

A closed-loop worker sends its next request when the previous one returns, so when the model
stalls the load stalls with it and the requests that would have waited are never counted
(coordinated omission). Under open-loop load the arrival times are fixed before the window
opens, from the offered ``request_rate`` and the ``arrival`` process, and each request's latency
is measured from its scheduled arrival: time spent waiting for a free worker counts.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

ARRIVALS: Final[tuple[str, ...]] = ("poisson", "gamma", "constant")

# A request that starts later than this after its scheduled arrival is "late": it waited for a
# free worker (queueing), or the load generator fell behind.
LATE_NS: Final = 1_000_000


@dataclass(frozen=True)
class OpenLoad:
    """Open-loop load offered to a whole configuration.

    ``request_rate``: requests per second over all copies; ``arrival``: the inter-arrival
    process (``poisson``: exponential gaps; ``gamma``: gamma gaps of shape ``burstiness``, 1 being
    Poisson, below 1 burstier, above 1 more even; ``constant``: equal gaps); ``max_concurrency``:
    requests in the system (waiting or in service) beyond which an arriving request is dropped,
    shared out over the copies as their requests are; ``seed``: the schedule's seed, so a rerun
    replays the same arrivals.
    """

    request_rate: float
    arrival: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    seed: int = 0

    def with_rate(self, rate: float) -> OpenLoad:
        return OpenLoad(rate, self.arrival, self.burstiness, self.max_concurrency, self.seed)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    return float(value)


def open_load(request_rate: object = None, arrival: object = "poisson", burstiness: object = None,
              max_concurrency: object = None, seed: object = 0) -> OpenLoad | None:
    """The open-loop load the keywords describe (None without ``request_rate``); ValueError naming the keyword."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a whole number >= 0, got {seed!r}")
    if request_rate is None:
        kind = check_arrival(arrival)
        for name, value, default in (("arrival", kind, "poisson"), ("burstiness", burstiness, None),
                                     ("max_concurrency", max_concurrency, None)):
            if value is not None and value != default:
                raise ValueError(f"{name}: applies to open-loop load only; give request_rate (requests/s) too, "
                                 "or slo= to search the capacity at that load")
        return None
    rate = _number("request_rate", request_rate)
    if rate <= 0:
        raise ValueError(f"request_rate: must be > 0 requests per second, got {request_rate!r}")
    kind = check_arrival(arrival)
    shape = 1.0
    if burstiness is not None:
        if kind != "gamma":
            raise ValueError(f"burstiness: applies to arrival='gamma' only (the gamma shape), got arrival={kind!r}")
        shape = _number("burstiness", burstiness)
        if shape <= 0:
            raise ValueError(f"burstiness: must be > 0 (1 is Poisson, below 1 burstier), got {burstiness!r}")
    cap: int | None = None
    if max_concurrency is not None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency: expected a whole number >= 1 of requests in flight, "
                             f"got {max_concurrency!r}")
        cap = max_concurrency
    return OpenLoad(rate, kind, shape, cap, seed)


def check_arrival(arrival: object) -> str:
    if arrival is None:
        return "poisson"
    if isinstance(arrival, str) and arrival.lower() in ARRIVALS:
        return arrival.lower()
    raise ValueError(f"arrival: expected one of {', '.join(repr(a) for a in ARRIVALS)}, got {arrival!r}")


def _generator(load: OpenLoad, round_index: int) -> np.random.Generator:
    # One stream per (seed, round, process kind): the same round of a rerun, and of both sides of an
    # A/B pair, replays the same arrivals (common random numbers), while rounds differ.
    tag = zlib.crc32(f"{load.arrival}:{load.burstiness!r}".encode())
    return np.random.default_rng([load.seed, round_index, tag])


def arrival_offsets_ns(load: OpenLoad, duration_s: float, round_index: int = 0) -> npt.NDArray[np.int64]:
    """Every arrival of the window, in ns after it opens (sorted, all < the window's length)."""
    window_ns = int(duration_s * 1e9)
    rate = load.request_rate
    expected = rate * duration_s
    if load.arrival == "constant":
        n = math.ceil(expected)
        out: npt.NDArray[np.int64] = (np.arange(n, dtype=np.float64) * (1e9 / rate)).astype(np.int64)
        return out[out < window_ns]
    rng = _generator(load, round_index)
    # Enough gaps to cover the window with overwhelming probability; more are drawn if not.
    chunk = int(expected + 6 * math.sqrt(expected + 1) + 16)
    gaps: list[npt.NDArray[np.float64]] = []
    total = 0.0
    while total < duration_s:
        if load.arrival == "gamma":
            g = rng.gamma(load.burstiness, 1.0 / (rate * load.burstiness), chunk)
        else:
            g = rng.exponential(1.0 / rate, chunk)
        gaps.append(g)
        total += float(g.sum())
    times = np.cumsum(np.concatenate(gaps))
    # The first request arrives one gap after the window opens, as in a process already running.
    ns = (times * 1e9).astype(np.int64)
    result: npt.NDArray[np.int64] = ns[ns < window_ns]
    return result


def share_of_copy(offsets: npt.NDArray[np.int64], copy_index: int, n_copies: int) -> npt.NDArray[np.int64]:
    """The requests copy ``copy_index`` serves: every n-th in turn, as a round-robin balancer deals them."""
    share: npt.NDArray[np.int64] = offsets[copy_index::n_copies]
    return share


def cap_of_copy(max_concurrency: int | None, copy_index: int, n_copies: int) -> int | None:
    """This copy's part of ``max_concurrency``: the parts add up to it, except that each copy may hold at least
    one request (with fewer than one per copy, the cap is one per copy)."""
    if max_concurrency is None:
        return None
    base, extra = divmod(max_concurrency, n_copies)
    return max(1, base + (1 if copy_index < extra else 0))
