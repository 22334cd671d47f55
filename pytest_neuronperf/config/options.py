"""The plugin's options, described once: flag, ini key, Settings field, defaults and help.

Every pytest run in the environment reads this table (to register the flags and
ini keys), so it is plain data; the parsers and the :class:`Settings` they
produce live in :mod:`pytest_neuronperf.config.settings`, which loads only when an
option is given or a benchmark runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS, DEFAULT_TOLERANCE, FINGERPRINT_FIELDS

MARKER: Final = "neuron_benchmark"
DEFAULT_BASELINE_DIR: Final = ".neuronperf/baselines"
DEFAULT_ROUNDS: Final = 3
# The most rounds per configuration (per side, comparing against a revision) the sequential gate takes.
DEFAULT_MAX_ROUNDS: Final = 10

# The defaults worth showing in --help, as they would be typed.
_SHOWN_DEFAULTS: Final[Mapping[str, str]] = {
    "baseline_dir": DEFAULT_BASELINE_DIR,
    "tolerance": f"{DEFAULT_TOLERANCE * 100:g}%",
    "rounds": str(DEFAULT_ROUNDS),
    "max_rounds": str(DEFAULT_MAX_ROUNDS),
    "fingerprint_keys": ",".join(DEFAULT_FINGERPRINT_KEYS),
}


def ini_is_set(value: object) -> bool:
    """Whether an ini value was given: pytest reads an unset (or empty) key as ``""`` or ``[]``."""
    return value is not None and value != "" and value != []


class Option:
    """One plugin option.

    ``is_flag`` options take no value on the command line (``store_true``, or
    ``store_false`` for ``negative_flag``); in the ini they read as booleans.
    The ini key and the argparse ``dest`` are both the flag without dashes
    (``--npf-duration`` -> ``npf_duration``).
    """

    # A plain slotted class, not a dataclass: this module is imported by every pytest run.
    __slots__ = ("field", "flag", "help", "is_flag", "metavar", "negative_flag", "negative_help")

    def __init__(
        self,
        flag: str,
        field: str,
        help: str,
        *,
        is_flag: bool = False,
        negative_flag: str | None = None,
        negative_help: str | None = None,
        metavar: str | None = None,
    ) -> None:
        self.flag = flag
        self.field = field
        self.help = help
        self.is_flag = is_flag
        self.negative_flag = negative_flag
        self.negative_help = negative_help
        self.metavar = metavar

    def __repr__(self) -> str:
        return f"Option({self.flag!r})"

    @property
    def ini(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini

    @property
    def shown_default(self) -> str | None:
        """The default as it would be typed, where there is one worth showing."""
        return _SHOWN_DEFAULTS.get(self.field)

    @property
    def help_with_default(self) -> str:
        shown = self.shown_default
        return self.help if shown is None else f"{self.help} (default: {shown})"


OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "--npf-duration",
        "duration",
        "how long each configuration is measured, such as 10s, 2m or 500ms; overrides each test's own",
        metavar="DURATION",
    ),
    Option(
        "--npf-save-baseline",
        "save_baseline",
        "store this run's results as the baselines of the tests that ran",
        is_flag=True,
    ),
    Option(
        "--npf-baseline-dir",
        "baseline_dir",
        "folder of the baseline files, relative to the rootdir",
        metavar="DIR",
    ),
    Option(
        "--npf-tolerance",
        "tolerance",
        "allowed change against the baseline: 10% or 0.1 for all metrics, or throughput=5%,p50=8%,p99=10%",
        metavar="TOLERANCE",
    ),
    Option(
        "--npf-compare",
        "compare",
        "compare results with the stored baselines (the default)",
        is_flag=True,
        negative_flag="--npf-no-compare",
        negative_help="measure and report only; never fail a test on a baseline comparison",
    ),
    Option(
        "--npf-require-baseline",
        "require_baseline",
        "fail a performance test that has no baseline for this environment instead of passing it",
        is_flag=True,
    ),
    Option(
        "--npf-device",
        "device",
        "run every performance test on this device type (neuron, cpu, cuda, ...)",
        metavar="DEVICE",
    ),
    Option(
        "--npf-n-models",
        "n_models",
        "model copies to sweep, such as 1,2 or 1,max; overrides each test's own",
        metavar="LIST",
    ),
    Option(
        "--npf-workers",
        "workers",
        "worker threads per model copy to sweep, such as 1,2; overrides each test's own",
        metavar="LIST",
    ),
    Option("--npf-json", "json_path", "write every report to this JSON file", metavar="PATH"),
    Option("--npf-csv", "csv_path", "write every report to this CSV file", metavar="PATH"),
    Option("--npf-md", "md_path", "write a Markdown summary to this file", metavar="PATH"),
    Option("--npf-html", "html_path", "write an HTML report with plots to this file", metavar="PATH"),
    Option("--npf-skip", "skip", "skip every performance test", is_flag=True),
    Option("--npf-only", "only", "run only the performance tests", is_flag=True),
    Option(
        "--npf-verbosity",
        "verbosity",
        "runner log level: 0 errors only, 1 info, 2 debug",
        metavar="LEVEL",
    ),
    Option(
        "--npf-rounds",
        "rounds",
        "rounds measured per configuration, spread over the test's duration",
        metavar="N",
    ),
    Option(
        "--npf-max-rounds",
        "max_rounds",
        "the most rounds per configuration (per side with --npf-against): while a comparison is inconclusive, "
        "rounds are added until it is decided or this many were measured",
        metavar="N",
    ),
    Option(
        "--npf-against",
        "against",
        "measure every performance test against the same test at this git revision (origin/main, a tag, a sha), "
        "in alternating rounds in this run, instead of against stored baselines",
        metavar="REF",
    ),
    Option(
        "--npf-strict",
        "strict",
        "fail on inconclusive comparisons and unstable measurements, not only on clear regressions",
        is_flag=True,
    ),
    Option(
        "--npf-timeout",
        "timeout",
        "how long a model copy may take to load and warm up, and to finish after its window closes, such as 2m "
        "(a test's own timeout= wins)",
        metavar="DURATION",
    ),
    Option(
        "--npf-overwrite-corrupt",
        "overwrite_corrupt",
        "when saving, replace unreadable baseline files (the old file is kept aside as .corrupt-<time>)",
        is_flag=True,
    ),
    Option(
        "--npf-recompile",
        "recompile",
        "compile models again even where a compiled artifact exists",
        is_flag=True,
    ),
    Option(
        "--npf-preload",
        "preload",
        "modules the model copies' forkserver imports once, besides the model's own (found automatically), "
        "such as transformers; off: import nothing of the model's ahead (each copy imports it again)",
        metavar="MODULES",
    ),
    Option(
        "--npf-fingerprint-keys",
        "fingerprint_keys",
        "environment fields that must match for a baseline to apply: some of "
        + ", ".join(FINGERPRINT_FIELDS)
        + ", or none",
        metavar="FIELDS",
    ),
)
