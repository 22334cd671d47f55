"""Sequential rounds: look at the evidence after every round (or round pair) and stop once it decides.

Looking again after each new round and failing whenever a look is significant would raise the
false-alarm rate with every look. The gate spends its error rates instead (alpha spending with a
union bound): the looks at n = first, first + 1, ..., last rounds get shares of alpha that add up
to alpha, in proportion to the rounds each look adds (linear spending in information time, so the
first look, with ``first`` of ``last`` rounds, gets first / last of it). Whatever the looks' mutual
correlation, the chance of any false FAIL over all looks is then at most alpha; the same holds for
the pass side with beta (the chance of passing a change that is exactly at the tolerance).

The judge turns a look's p-value into ``p * alpha / alpha_n``, which is itself a valid p-value for
"some look rejected" (its chance of being <= x is at most the sum over looks of x * alpha_n / alpha
= x), so Holm's correction across metrics and configurations works on it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

# Level of the per-look FAIL tests, over all looks together.
ALPHA = 0.01
# Chance, over all looks together, of passing a change that is exactly at the tolerance: one side
# of the 95% interval that a single look uses.
BETA = 0.025


@dataclass(frozen=True)
class Looks:
    """The interim analyses of one configuration: after ``first`` rounds, then after each one more, up to ``last``."""

    first: int = 3
    last: int = 3
    alpha: float = ALPHA
    beta: float = BETA

    def __post_init__(self) -> None:
        if self.first < 1:
            raise ValueError(f"Looks.first must be at least 1, got {self.first}")
        if self.last < self.first:
            raise ValueError(f"Looks.last ({self.last}) must be at least Looks.first ({self.first})")
        if not 0.0 < self.alpha < 0.5 or not 0.0 < self.beta < 0.5:
            raise ValueError(f"alpha and beta must be in (0, 0.5), got {self.alpha} and {self.beta}")

    @property
    def sequential(self) -> bool:
        return self.last > self.first

    def _share(self, n: int) -> float:
        """The fraction of an error rate spent at the look with ``n`` rounds."""
        if not self.sequential:
            return 1.0
        n = min(max(n, self.first), self.last)
        return (self.first if n == self.first else 1) / self.last

    def alpha_at(self, n: int) -> float:
        """The FAIL level of the look with ``n`` rounds."""
        return self.alpha * self._share(n)

    def beta_at(self, n: int) -> float:
        """The one-sided level of the pass bound at the look with ``n`` rounds."""
        return self.beta * self._share(n)

    def more_allowed(self, n: int) -> bool:
        """Whether a look with ``n`` rounds may be followed by another round."""
        return n < self.last

    def describe(self) -> str:
        if not self.sequential:
            return f"one look at {self.first} round(s)"
        return (f"looks after {self.first}..{self.last} rounds, alpha {self.alpha:g} and beta {self.beta:g} "
                "spent linearly over the rounds (union bound)")
