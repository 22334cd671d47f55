"""Between-session variance: how much a whole session's level moves, beyond its rounds' own spread.

Rounds of one pytest session share more than their code: the machine's state that day (its
neighbours, clocks, thermal state, where the processes landed). A baseline that accumulated
rounds over several sessions shows that as offsets between the sessions' means; a random-effects
model (log value = level + session offset + round noise) estimates their variance, so a comparison
can count the current session as one more draw of the offset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SessionVariance:
    tau2: float  # between-session variance of the per-round log values (>= 0)
    df: float  # its degrees of freedom (sessions - 1)
    sessions: int  # how many sessions the rounds came from


def session_groups(values: Sequence[float], sessions: Sequence[str | None]) -> list[FloatArray]:
    """The values grouped by the session each came from, groups in order of first appearance.

    ``None`` (a round saved before rounds were tagged) is a session of its own: untagged rounds
    cannot be told apart, so they count as one session, which can only understate the spread.
    """
    if len(values) != len(sessions):
        raise ValueError(f"{len(values)} values but {len(sessions)} session labels: each value needs one")
    groups: dict[str | None, list[float]] = {}
    for i, (value, session) in enumerate(zip(values, sessions, strict=True)):
        if session is not None and not isinstance(session, str):
            raise ValueError(f"session label {i} must be a string or None, got {type(session).__name__}")
        groups.setdefault(session, []).append(_finite(value, f"value {i}"))
    return [np.array(g, dtype=np.float64) for g in groups.values()]


def between_session_variance(groups: Sequence[Sequence[float] | FloatArray]) -> SessionVariance:
    """Method-of-moments estimate of the variance of the session offsets, from per-session LOG values.

    Under the model, session i's mean of n_i rounds varies by tau2 + sigma2 / n_i, so the plain
    sample variance of the k session means has expectation tau2 + sigma2 * mean(1 / n_i), for
    any mix of sizes. Subtracting the pooled within-session variance (from groups of >= 2 values,
    which are the only ones that show sigma2) times mean(1 / n_i) leaves an unbiased tau2; like
    DerSimonian-Laird it is floored at 0, since a negative variance only says the offsets are too
    small to see. With no group of two values sigma2 cannot be separated, so all of the means'
    spread counts as between sessions: the larger reading, which widens a comparison rather than
    letting an unseen session offset pass for a regression. Fewer than 2 groups show no
    between-session spread at all: tau2 = 0, df = 0.
    """
    arrays = []
    for i, group in enumerate(groups):
        try:
            values = np.asarray(group, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"session group {i} must be a list of numbers, got {group!r}") from None
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"session group {i} must be a non-empty list of numbers")
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"session group {i} holds a non-finite value ({values[bad[0]]!r} at {bad[0]}): "
                             "log values of rounds must be finite")
        arrays.append(values)
    k = len(arrays)
    if k < 2:
        return SessionVariance(tau2=0.0, df=0.0, sessions=k)
    means = np.array([a.mean() for a in arrays])
    sizes = np.array([a.size for a in arrays], dtype=np.float64)
    observed = float(means.var(ddof=1))
    within_df = float(sum(a.size - 1 for a in arrays))
    if within_df > 0:
        sigma2 = float(sum(((a - a.mean()) ** 2).sum() for a in arrays)) / within_df
        tau2 = observed - sigma2 * float((1.0 / sizes).mean())
    else:
        tau2 = observed
    return SessionVariance(tau2=max(0.0, tau2), df=float(k - 1), sessions=k)


def _finite(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} is {number!r}: log values of rounds must be finite")
    return number
