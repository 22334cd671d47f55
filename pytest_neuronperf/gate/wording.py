"""How verdicts and numbers read, in messages, tables and reports: one place for every word of it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Final

from pytest_neuronperf.gate.verdict import Verdict

# Worst first: the order of verdict counts and summary tiles.
VERDICT_ORDER: Final[tuple[Verdict, ...]] = (
    Verdict.ERROR, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NO_BASELINE, Verdict.PASS, Verdict.MEASURED,
    Verdict.SKIPPED,
)
# In sentences: "1 regressed, 2 passed".
SENTENCE_WORDS: Final[Mapping[str, str]] = {
    Verdict.PASS: "passed", Verdict.FAIL: "regressed", Verdict.INCONCLUSIVE: "inconclusive",
    Verdict.NO_BASELINE: "without baseline", Verdict.MEASURED: "measured only", Verdict.SKIPPED: "skipped",
    Verdict.ERROR: "errored",
}
# Headings of the HTML report's tiles.
TITLES: Final[Mapping[str, str]] = {
    **SENTENCE_WORDS, Verdict.FAIL: "regressed (fail)",
}
# Beside the word, never instead of it: GitHub renders emoji (Markdown); the HTML report uses plain symbols.
EMOJI: Final[Mapping[str, str]] = {
    Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.INCONCLUSIVE: "⚠️", Verdict.NO_BASELINE: "⚪",
    Verdict.MEASURED: "📏", Verdict.SKIPPED: "⏭️", Verdict.ERROR: "💥",
}
SYMBOLS: Final[Mapping[str, str]] = {
    Verdict.PASS: "✓", Verdict.FAIL: "✗", Verdict.INCONCLUSIVE: "?", Verdict.NO_BASELINE: "○",
    Verdict.MEASURED: "·", Verdict.SKIPPED: "»", Verdict.ERROR: "!",
}


def sentence_word(verdict: str) -> str:
    return SENTENCE_WORDS.get(verdict, verdict)


# --- numbers in the gate's messages ------------------------------------------------------------------


def num(value: float) -> str:
    """A measured value in a message: three significant figures or so (412, 36.2, 3.25)."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if 0 < abs(value) < 0.01:
        return f"{value:.2g}"  # a limit of 0.001 ms must not read as 0.00
    return f"{value:.2f}"


def pct(value: float, digits: int = 1) -> str:
    """A signed relative change: ``+12.5%``."""
    return f"{value * 100:+.{digits}f}%"


def ci_pct(ci: tuple[float, float]) -> str:
    """An interval of relative changes: ``-8%..+3%`` (a decimal where both ends are small)."""
    digits = 0 if min(abs(ci[0]), abs(ci[1])) >= 0.1 else 1
    return f"{pct(ci[0], digits)}..{pct(ci[1], digits)}"


def tolerance_text(tolerance: float) -> str:
    return f"{tolerance * 100:g}%"


# --- numbers in tables and reports ---------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def format_number(value: object) -> str:
    """A measured value for people: 27,052 / 412 / 36.2 / 3.25 / 0.0343; an em dash when unknown."""
    if not _is_number(value):
        return "—"
    v = float(value)  # type: ignore[arg-type]
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:#.3g}"


def format_change(value: object) -> str:
    """A relative change for people: ``+12.5%``; an em dash when unknown."""
    if not _is_number(value):
        return "—"
    return pct(float(value))  # type: ignore[arg-type]


def age_text(saved_at: str, now: datetime | None = None) -> str:
    """How long ago an ISO-8601 UTC time was, in words: ``just now``, ``5 minutes ago``, ``3 days ago``."""
    try:
        then = datetime.fromisoformat(saved_at.replace("Z", "+00:00"))
    except ValueError:
        return saved_at
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    seconds = ((now or datetime.now(timezone.utc)) - then).total_seconds()
    if seconds < -60:
        return "in the future (clock skew?)"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600),
                       ("minute", 60)):
        # Days up to two months read better than "1 month"; so do hours up to two days.
        threshold = size * (2 if unit in ("month", "day") else 1)
        if seconds >= threshold:
            n = int(seconds // size)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def config_label(report: Mapping[str, object]) -> str:
    """A configuration as people say it in reports: ``2 models x 1 worker, batch 1``."""
    n, w = report.get("n_models"), report.get("workers_per_model")
    text = f"{n} model{'' if n == 1 else 's'} x {w} worker{'' if w == 1 else 's'}, batch {report.get('batch_size')}"
    pipeline = report.get("pipeline_size")
    if pipeline not in (None, 1):
        text += f", pipeline {pipeline}"
    return text
