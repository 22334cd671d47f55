"""pytest hooks of pytest-neuronperf (loaded by every pytest run: keep module-level imports light).

Every pytest run in the environment loads this module, so it imports only the
option table. The state of a run lives in objects kept under StashKeys and
built on first need: the :class:`~pytest_neuronperf.config.settings.Settings` when an
option is given or a benchmark runs; the
:class:`~pytest_neuronperf.session.session.NpfSession` and the live progress view when a
benchmark runs, a result file is asked for, or (on an xdist controller) a
worker starts. A run that collects no benchmark test loads none of their
modules; runner, statistics and torch load only when a benchmark runs.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Union

import pytest

from pytest_neuronperf.config.options import MARKER, OPTIONS, ini_is_set

if TYPE_CHECKING:
    from pytest_neuronperf.config.settings import Settings
    from pytest_neuronperf.reference.worktree import ReferenceCheckout
    from pytest_neuronperf.session.fixture import NpfBench
    from pytest_neuronperf.session.progress_view import ProgressView
    from pytest_neuronperf.session.session import NpfSession

WORKEROUTPUT_KEY = "neuronperf_measurements"
# Attributes of a worker's test reports, which xdist serialises with the report: the measurements
# made during that phase (JSON text), and, on the setup report, that the test is a benchmark test.
REPORT_MEASUREMENTS = "npf_measurements"
REPORT_BENCHMARK = "npf_benchmark"
CONFIGURED_KEY = pytest.StashKey[bool]()
SETTINGS_KEY = pytest.StashKey["Settings"]()
REVISION_KEY = pytest.StashKey["ReferenceCheckout"]()
# Checkouts of the revisions compared against (--npf-against), in a folder git ignores.
REVISIONS_DIR = ".neuronperf/revisions"
SESSION_KEY = pytest.StashKey["NpfSession"]()
PROGRESS_KEY = pytest.StashKey["ProgressView"]()
BENCH_KEY = pytest.StashKey["NpfBench"]()
INBOX_KEY = pytest.StashKey["_WorkerReports"]()
_SignalHandler = Union[Callable[[int, Union[FrameType, None]], Any], int, signal.Handlers, None]
SIGTERM_KEY = pytest.StashKey[_SignalHandler]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("neuronperf", "inference performance tests (pytest-neuronperf)")
    for option in OPTIONS:
        help_text = option.help_with_default.replace("%", "%%")  # argparse formats help with %
        if option.is_flag:
            group.addoption(option.flag, action="store_true", dest=option.dest, default=None, help=help_text)
            if option.negative_flag:
                group.addoption(option.negative_flag, action="store_false", dest=option.dest, default=None,
                                help=(option.negative_help or "").replace("%", "%%"))
        else:
            group.addoption(option.flag, dest=option.dest, default=None, metavar=option.metavar, help=help_text)
        # Read as text so an unset key stays "not given" and the command line can win.
        parser.addini(option.ini, help=f"{option.help} (same as {option.flag})", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(model=..., inputs=..., **params): benchmark a model over the configuration matrix and "
        "gate throughput / latency against baselines and limits (see pytest-neuronperf's README)",
    )
    config.stash[CONFIGURED_KEY] = True
    cli = {option.field: config.getoption(option.dest) for option in OPTIONS}
    ini = {option.field: config.getini(option.ini) for option in OPTIONS}
    given = [field for field in cli if cli[field] is not None or ini_is_set(ini[field])]
    if given:
        # Anything the user typed is checked now, as a usage error, not when the first benchmark runs.
        _check_settings(config, _build_settings(config, cli, ini))
        if any(field.endswith("_path") for field in given):
            _session(config)  # result files are written even when no benchmark ran
    _install_sigterm_handler(config)
    _start_forkservers_early(config)


# The sets of modules the model copies' forkservers preloaded in the last session (pytest's cache).
FORKSERVERS_CACHE_KEY = "neuronperf/forkservers"


def _start_forkservers_early(config: pytest.Config) -> None:
    """Start the forkservers the last session used before collection: their imports (torch,
    transformers) then run beside pytest's own, and the first copy does not wait for them."""
    cache = getattr(config, "cache", None)
    if cache is None or _runs_no_tests(config):
        return
    sets = cache.get(FORKSERVERS_CACHE_KEY, None)
    if not (isinstance(sets, list) and sets and all(isinstance(m, list) for m in sets)):
        return
    from pytest_neuronperf.runner.launch import SERVERS

    try:
        SERVERS.start_early([[str(name) for name in modules] for modules in sets])
    except Exception as exc:  # a head start, never a reason to fail: the first benchmark starts its own
        from pytest_neuronperf._util.log import logger

        logger.debug("The model copies' forkservers could not start early: %s", exc)


def _runs_no_tests(config: pytest.Config) -> bool:
    """An xdist controller (its workers run the tests), or a run that only lists or explains."""
    controller = not hasattr(config, "workerinput") and config.getoption("numprocesses", None) not in (None, 0)
    return bool(controller or config.getoption("collectonly", False) or config.getoption("help", False))


def _remember_forkservers(config: pytest.Config) -> None:
    launch = sys.modules.get("pytest_neuronperf.runner.launch")
    cache = getattr(config, "cache", None)
    if launch is None or cache is None or not launch.SERVERS.asked:
        return
    cache.set(FORKSERVERS_CACHE_KEY, [list(modules) for modules in launch.SERVERS.asked])


def _build_settings(
    config: pytest.Config, cli: dict[str, object | None], ini: dict[str, str | list[str] | bool | None]
) -> Settings:
    from pytest_neuronperf.config.settings import Settings, SettingsError

    try:
        settings = Settings.from_sources(cli, ini)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    return settings


def _check_settings(config: pytest.Config, settings: Settings) -> None:
    if settings.against is not None:
        from pytest_neuronperf.reference.worktree import RevisionError, checkout, ignored_cache_dir

        try:
            config.stash[REVISION_KEY] = checkout(settings.against, Path(config.rootpath),
                                                  ignored_cache_dir(Path(config.rootpath) / REVISIONS_DIR))
        except RevisionError as exc:
            raise pytest.UsageError(str(exc)) from None
    if settings.device is not None:
        from pytest_neuronperf.backends.registry import canonical_device_type

        try:
            canonical_device_type(settings.device)
        except ValueError as exc:
            raise pytest.UsageError(f"--npf-device: {exc}") from None
    if settings.html_path:
        from pytest_neuronperf.report.html import ReportDependencyError, require_matplotlib

        try:
            require_matplotlib()
        except ReportDependencyError as exc:
            raise pytest.UsageError(f"--npf-html: {exc}") from None


def get_settings(config: pytest.Config) -> Settings:
    """This run's resolved options (every default, where none was given)."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        if not config.stash.get(CONFIGURED_KEY, False):
            # Defaults read now would silently ignore the options the user gave.
            raise RuntimeError("pytest-neuronperf: settings asked for outside pytest_configure/unconfigure")
        from pytest_neuronperf.config.settings import Settings

        settings = config.stash[SETTINGS_KEY] = Settings()
    return settings


def _session(config: pytest.Config) -> NpfSession:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from pytest_neuronperf.session.session import NpfSession

        session = config.stash[SESSION_KEY] = NpfSession(config, get_settings(config))
        session.revision = _revision(config)
        session.progress = _progress(config)
    return session


def _revision(config: pytest.Config) -> ReferenceCheckout | None:
    """The checkout of the --npf-against revision, made when the options were checked."""
    return config.stash.get(REVISION_KEY, None)


def _progress(config: pytest.Config) -> ProgressView:
    view = config.stash.get(PROGRESS_KEY, None)
    if view is None:
        from pytest_neuronperf.session.progress_view import ProgressView

        view = config.stash[PROGRESS_KEY] = ProgressView(config)
    return view


def pytest_unconfigure(config: pytest.Config) -> None:
    _restore_sigterm_handler(config)
    _remember_forkservers(config)
    view = config.stash.get(PROGRESS_KEY, None)
    if view is not None:
        view.close()
        del config.stash[PROGRESS_KEY]
    if SESSION_KEY in config.stash:
        del config.stash[SESSION_KEY]
    inbox = config.stash.get(INBOX_KEY, None)
    if inbox is not None:
        del config.stash[INBOX_KEY]
        config.pluginmanager.unregister(inbox)
    if SETTINGS_KEY in config.stash:
        del config.stash[SETTINGS_KEY]
    if CONFIGURED_KEY in config.stash:
        del config.stash[CONFIGURED_KEY]


# -- pytest-xdist ---------------------------------------------------------------------------------


class _WorkerReports:
    """On the xdist controller: takes the measurements each worker's test reports carry, as they
    come, and keeps track of the benchmark tests under way on each worker, so that a worker that
    dies loses only the test it was running, and says so."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.running: dict[str, str] = {}  # benchmark test id -> the worker running it

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = getattr(report, "worker_id", None)
        if worker is None:
            return  # not a worker's report (xdist's own report of a crashed test, say)
        if report.when == "setup" and getattr(report, REPORT_BENCHMARK, False):
            self.running[report.nodeid] = str(worker)
        elif report.when in ("call", "teardown"):
            # The call report carries what the test measured: from here on nothing of it can be lost.
            self.running.pop(report.nodeid, None)
        payload = getattr(report, REPORT_MEASUREMENTS, None)
        if isinstance(payload, str) and payload:
            _session(self.config).receive(payload)

    def running_on(self, worker: str) -> list[str]:
        nodeids = sorted(nodeid for nodeid, on in self.running.items() if on == worker)
        for nodeid in nodeids:
            del self.running[nodeid]
        return nodeids


def _worker_reports(config: pytest.Config) -> _WorkerReports:
    inbox = config.stash.get(INBOX_KEY, None)
    if inbox is None:
        inbox = config.stash[INBOX_KEY] = _WorkerReports(config)
        config.pluginmanager.register(inbox, "neuronperf-worker-reports")
    return inbox


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    _worker_reports(node.config)
    _progress(node.config).configure_node(node)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    # What a worker measured after its last test report (rare: a session-scoped fixture's own
    # teardown), sent with its output at shutdown.
    payload = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
    if payload:
        _session(node.config).receive(payload)
    if error is not None and error != "keyboard-interrupt":  # an interrupted run is reported as such
        inbox = node.config.stash.get(INBOX_KEY, None)
        worker = str(getattr(getattr(node, "gateway", None), "id", "?"))
        lost = inbox.running_on(worker) if inbox is not None else []
        if lost:
            _session(node.config).lost(lost, worker, error)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if hasattr(item.config, "workerinput"):  # an xdist worker: each phase's report carries what it measured
        if call.when == "setup" and _is_benchmark(item):
            setattr(report, REPORT_BENCHMARK, True)
        npf_session = item.config.stash.get(SESSION_KEY, None)
        payload = npf_session.payload() if npf_session is not None else ""
        if payload:
            setattr(report, REPORT_MEASUREMENTS, payload)
    return report


# -- the end of the run ---------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, Any, Any]:
    # Runs after every test (and, on the xdist controller, after every worker is down), and only
    # when the loop was not interrupted.
    result = yield
    npf_session = session.config.stash.get(SESSION_KEY, None)
    if npf_session is None:
        return result
    if npf_session.is_worker:  # the xdist controller saves and reports
        workeroutput: dict[str, Any] = session.config.workeroutput  # type: ignore[attr-defined]
        workeroutput[WORKEROUTPUT_KEY] = npf_session.payload()
    else:
        npf_session.finish(session)
    return result


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    npf_session = config.stash.get(SESSION_KEY, None)
    if npf_session is not None:
        npf_session.terminal_summary(terminalreporter, config)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by {signal.Signals(signum).name}")


def _install_sigterm_handler(config: pytest.Config) -> None:
    """Make SIGTERM interrupt the run the way Ctrl-C does.

    By default SIGTERM ends pytest on the spot: model copies are not stopped, and
    nothing reports what happened. As a KeyboardInterrupt it takes pytest's normal
    path: teardown stops the copies, the interruption is reported, no baseline is
    saved. Only the default action is replaced; a handler someone else installed (or
    SIG_IGN) is theirs to keep.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    config.stash[SIGTERM_KEY] = signal.signal(signal.SIGTERM, _interrupt)


def _restore_sigterm_handler(config: pytest.Config) -> None:
    previous = config.stash.get(SIGTERM_KEY, None)
    if previous is None or threading.current_thread() is not threading.main_thread():
        return
    del config.stash[SIGTERM_KEY]
    if signal.getsignal(signal.SIGTERM) is _interrupt:
        signal.signal(signal.SIGTERM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Generator[None, Any, Any]:
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        marker = item.get_closest_marker(MARKER) if isinstance(item, pytest.Function) else None
        if marker is None:
            continue
        if marker.args:
            raise collector.CollectError(f"{item.nodeid}: @pytest.mark.{MARKER} takes keyword arguments only")
        from pytest_neuronperf.session.fixture import check_keywords

        try:
            check_keywords(marker.kwargs, f"{item.nodeid}: @pytest.mark.{MARKER}")
        except (TypeError, ValueError) as exc:
            raise collector.CollectError(str(exc)) from None
    return result


def _is_benchmark(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or "npf_bench" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return  # nothing given: --npf-skip and --npf-only are off
    if settings.skip:
        skip = pytest.mark.skip(reason="performance tests skipped (--npf-skip)")
        for item in items:
            if _is_benchmark(item):
                item.add_marker(skip)
    elif settings.only:
        keep = [item for item in items if _is_benchmark(item)]
        dropped = [item for item in items if not _is_benchmark(item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep


def _bench(item: pytest.Item) -> NpfBench:
    from pytest_neuronperf.session.fixture import NpfBench

    bench = item.stash.get(BENCH_KEY, None)
    if bench is None:
        session = _session(item.config)
        bench = NpfBench(item, session, session.settings)
        item.stash[BENCH_KEY] = bench
    return bench


@pytest.fixture
def npf_bench(request: pytest.FixtureRequest) -> NpfBench:
    """Benchmark a model: ``npf_bench(model, inputs, **params)`` runs the configuration matrix, compares it
    with the stored baseline and fails the test on a regression; returns a result with the reports."""
    return _bench(request.node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    # A declarative test: the marker alone describes the benchmark; run it after the (usually empty) body.
    if item.get_closest_marker(MARKER) is not None and not _bench(item).called:
        _bench(item)()
    return result
