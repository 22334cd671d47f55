"""The verdicts, and the one rule that combines many into one."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum


class Verdict(str, Enum):
    """What a metric, a configuration or a measurement was judged to be.

    A str enum, so verdicts read back from JSON (plain strings) compare equal to the members.
    Metrics are only ever PASS, FAIL or INCONCLUSIVE; a configuration can also have had no
    reference (NO_BASELINE), have been measured without any comparison (MEASURED), or not have run
    (SKIPPED); ERROR marks a measurement that raised before it could be judged.
    """

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NO_BASELINE = "no baseline"
    MEASURED = "measured"
    SKIPPED = "skipped"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    # Enum hashes by member name; hashing by value keeps a Verdict and its string one dictionary key.
    def __hash__(self) -> int:
        return hash(self.value)


def combine(verdicts: Iterable[Verdict | str], *, strict: bool = False, require_baseline: bool = False) -> Verdict:
    """The verdict of a whole from its parts (metrics of a configuration, configurations of a measurement).

    Any FAIL or ERROR fails it, and so does a part without a reference under ``require_baseline``.
    Otherwise any INCONCLUSIVE makes it inconclusive, or fails it when ``strict`` (a gate that
    demands evidence of no regression). Anything else passes: nothing was found worse.
    """
    seen = {Verdict(v) for v in verdicts}
    if Verdict.FAIL in seen or Verdict.ERROR in seen or (require_baseline and Verdict.NO_BASELINE in seen):
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in seen:
        return Verdict.FAIL if strict else Verdict.INCONCLUSIVE
    return Verdict.PASS
